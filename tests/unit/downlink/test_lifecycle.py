"""The network servers' downlink reports as feedback: status, reason and the caller's correlation id."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry

from bridge_container.downlink.correlation import CorrelationIds
from bridge_container.downlink.feedback import FeedbackPublisher, FeedbackTopics
from bridge_container.downlink.lifecycle import LifecycleReports
from bridge_container.downlink.metrics import DownlinkMetrics
from bridge_container.ingress.events import DownlinkReport
from bridge_domain.topics import DOWNLINK_TOPIC_FIELDS, TopicPattern
from tests.unit.downlink.conftest import Published
from tests.unit.downlink.test_feedback import sample

PATTERN = TopicPattern.parse("fleet/{DevEUI}/down", allowed=DOWNLINK_TOPIC_FIELDS)
DEV_EUI = "70B3D57ED0000001"
QUEUE_ITEM = "ac4a6ec5-4e0a-4b25-a1a2-b1e8c6e1e2a4"


async def publish_all(
    reports: list[DownlinkReport], metrics: DownlinkMetrics, published: Published, ids: CorrelationIds
) -> list[tuple[str, dict[str, object]]]:
    async with FeedbackPublisher(published.publish, FeedbackTopics(PATTERN), metrics) as publisher:
        handler = LifecycleReports(publisher, metrics, ids)
        for report in reports:
            handler(report)
    return sorted((topic, orjson.loads(payload)) for topic, payload in published.messages)


async def test_tts_reports_carry_the_correlation_id_the_bridge_sent(
    metrics: DownlinkMetrics, published: Published
) -> None:
    report = DownlinkReport(
        "tts", DEV_EUI, "acknowledged", {}, correlation_ids=("as:downlink:01E19B99", "aws-iot-bridge:order-17")
    )
    [(topic, document)] = await publish_all([report], metrics, published, CorrelationIds())
    assert topic == f"fleet/{DEV_EUI}/down/acknowledged"
    assert (document["status"], document["correlationId"], document["lns"]) == ("acknowledged", "order-17", "tts")


async def test_chirpstack_reports_find_the_correlation_id_by_queue_item(
    metrics: DownlinkMetrics, published: Published
) -> None:
    ids = CorrelationIds()
    ids.remember(QUEUE_ITEM, "order-18")
    reports = [
        DownlinkReport("chirpstack", DEV_EUI, "sent", {}, reference=QUEUE_ITEM),
        DownlinkReport("chirpstack", DEV_EUI, "expired", {}, reference="another-item", detail="EXPIRED: gone"),
    ]
    [(expired_topic, expired), (sent_topic, sent)] = await publish_all(reports, metrics, published, ids)
    assert (sent_topic, sent["correlationId"], sent["lnsReference"]) == (
        f"fleet/{DEV_EUI}/down/sent",
        "order-18",
        QUEUE_ITEM,
    )
    assert expired_topic == f"fleet/{DEV_EUI}/down/expired"
    assert "correlationId" not in expired  # enqueued by another task: not known here
    assert expired["detail"] == "EXPIRED: gone"


async def test_a_reported_failure_is_counted_with_its_reason(
    metrics: DownlinkMetrics, published: Published, registry: CollectorRegistry
) -> None:
    report = DownlinkReport("tts", DEV_EUI, "failed", {}, detail="application_downlink_too_long")
    [(_, document)] = await publish_all([report], metrics, published, CorrelationIds())
    assert (document["reason"], document["detail"]) == ("lns_reported_failure", "application_downlink_too_long")
    assert sample(registry, "bridge_downlinks_failed_total", reason="lns_reported_failure") == 1
