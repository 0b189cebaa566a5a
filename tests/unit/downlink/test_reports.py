"""ThingPark DevEUI_downlink_Sent / DevEUI_downlink_Rejected reports become sent / failed feedback."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from bridge_container.downlink.correlation import CorrelationIds
from bridge_container.downlink.feedback import FeedbackPublisher, FeedbackTopics
from bridge_container.downlink.metrics import DownlinkMetrics
from bridge_container.downlink.reports import ThingParkReports
from bridge_domain.topics import DOWNLINK_TOPIC_FIELDS, TopicPattern
from tests.unit.downlink.conftest import CONNECTION_ID, Published

PATTERN = TopicPattern.parse("tpx/things/{DevEUI}/downlink", allowed=DOWNLINK_TOPIC_FIELDS)


async def report(
    metrics: DownlinkMetrics, published: Published, kind: str, body: dict[str, Any], ids: CorrelationIds | None = None
) -> list[tuple[str, dict[str, Any]]]:
    async with FeedbackPublisher(published.publish, FeedbackTopics(PATTERN), metrics) as publisher:
        await ThingParkReports(publisher, metrics, ids)(kind, body)
    return [(topic, orjson.loads(payload)) for topic, payload in published.messages]


async def test_a_sent_report_is_published_on_the_sent_topic_with_the_callers_correlation_id(
    metrics: DownlinkMetrics, published: Published
) -> None:
    ids = CorrelationIds()
    thingpark_id = ids.assign("order-17")
    body = {
        "DevEUI_downlink_Sent": {
            "DevEUI": "70b3d57ed0000001",
            "FPort": 2,
            "FCntDn": 5,
            "DeliveryStatus": 1,
            "CorrelationID": thingpark_id,
        }
    }
    [(topic, document)] = await report(metrics, published, "DevEUI_downlink_Sent", body, ids)
    assert topic == "tpx/things/70B3D57ED0000001/downlink/sent"
    assert (document["status"], document["correlationId"], document["lnsReference"]) == (
        "sent",
        "order-17",
        thingpark_id,
    )
    assert document["report"]["FCntDn"] == 5


async def test_a_sent_report_with_a_failed_delivery_is_a_failure(
    metrics: DownlinkMetrics, published: Published
) -> None:
    body = {"DevEUI": "70B3D57ED0000001", "DeliveryStatus": 0, "DeliveryFailedCause1": "A2"}
    [(topic, document)] = await report(metrics, published, "DevEUI_downlink_Sent", body)
    assert topic.endswith("/downlink/failed")
    assert (document["reason"], document["detail"]) == ("lns_reported_failure", "A2")


async def test_a_rejected_report_is_published_on_the_failed_topic_and_counted(
    metrics: DownlinkMetrics, published: Published, registry: CollectorRegistry
) -> None:
    body = {
        "DevEUI_downlink_Rejected": {
            "DevEUI": "70B3D57ED0000001",
            "CorrelationID": "0011223344556677",
            "DeliveryFailedCause1": "D0",
        }
    }
    [(topic, document)] = await report(metrics, published, "DevEUI_downlink_Rejected", body)
    assert topic == "tpx/things/70B3D57ED0000001/downlink/failed"
    assert (document["correlationId"], document["detail"]) == ("0011223344556677", "D0")
    failed = registry.get_sample_value(
        "bridge_downlinks_failed_total", {"connection": CONNECTION_ID, "reason": "lns_reported_failure"}
    )
    assert failed == 1


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("DevEUI_downlink_Sent", {"DevEUI_downlink_Sent": {"DevEUI": "70B3/../#"}}),
        ("DevEUI_downlink_Sent", {"DevEUI_downlink_Sent": {}}),
        ("DevEUI_uplink", {"DevEUI_uplink": {"DevEUI": "70B3D57ED0000001"}}),
    ],
)
async def test_what_is_not_a_valid_report_publishes_nothing(
    metrics: DownlinkMetrics, published: Published, kind: str, body: dict[str, Any]
) -> None:
    assert await report(metrics, published, kind, body) == []
