"""Feedback rendering, topics derived from the downlink pattern, and the bounded publisher."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
from prometheus_client import CollectorRegistry

from bridge_container.downlink.feedback import Feedback, FeedbackPublisher, FeedbackSettings, FeedbackTopics
from bridge_container.downlink.metrics import DownlinkMetrics
from bridge_container.downlink.reasons import FailureReason, FeedbackStatus
from bridge_domain.topics import DOWNLINK_TOPIC_FIELDS, FEEDBACK_STATUSES, TopicPattern
from tests.unit.downlink.conftest import CONNECTION_ID, Published

PATTERN = TopicPattern.parse("fleet/{DevEUI}/down", allowed=DOWNLINK_TOPIC_FIELDS)
NOW = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"connection": CONNECTION_ID, **labels}) or 0.0


def test_statuses_are_the_feedback_levels_the_connection_model_checks() -> None:
    assert tuple(status.value for status in FeedbackStatus) == FEEDBACK_STATUSES


def test_feedback_topics_append_the_status_to_the_downlink_topic() -> None:
    topics = FeedbackTopics(PATTERN)
    assert [topics.topic(status, "70B3D57ED0000001") for status in FeedbackStatus] == [
        "fleet/70B3D57ED0000001/down/queued",
        "fleet/70B3D57ED0000001/down/sent",
        "fleet/70B3D57ED0000001/down/acknowledged",
        "fleet/70B3D57ED0000001/down/nacked",
        "fleet/70B3D57ED0000001/down/expired",
        "fleet/70B3D57ED0000001/down/failed",
    ]


def test_failed_feedback_carries_correlation_id_and_reason() -> None:
    feedback = Feedback(
        "70B3D57ED0000001",
        FeedbackStatus.FAILED,
        correlation_id="order-1",
        reason=FailureReason.LNS_REJECTED,
        detail="thingpark answered 400",
        lns="thingpark",
    )
    assert feedback.document(NOW) == {
        "DevEUI": "70B3D57ED0000001",
        "status": "failed",
        "time": "2024-05-06T07:08:09.123+00:00",
        "correlationId": "order-1",
        "reason": "lns_rejected",
        "detail": "thingpark answered 400",
        "lns": "thingpark",
    }


def test_queued_feedback_leaves_out_what_it_does_not_know() -> None:
    document = Feedback("70B3D57ED0000001", FeedbackStatus.QUEUED).document(NOW)
    assert set(document) == {"DevEUI", "status", "time"}


async def test_emitted_feedback_is_published_on_its_topic(
    metrics: DownlinkMetrics, published: Published, registry: CollectorRegistry
) -> None:
    async with FeedbackPublisher(published.publish, FeedbackTopics(PATTERN), metrics, clock=lambda: NOW) as publisher:
        publisher.emit(Feedback("70B3D57ED0000001", FeedbackStatus.QUEUED, correlation_id="a"))
        publisher.emit(Feedback("70B3D57ED0000002", FeedbackStatus.FAILED, reason=FailureReason.QUEUE_FULL))
    topics = [topic for topic, _ in published.messages]
    assert sorted(topics) == ["fleet/70B3D57ED0000001/down/queued", "fleet/70B3D57ED0000002/down/failed"]
    by_topic = {topic: orjson.loads(payload) for topic, payload in published.messages}
    assert by_topic["fleet/70B3D57ED0000001/down/queued"]["correlationId"] == "a"
    assert by_topic["fleet/70B3D57ED0000002/down/failed"]["reason"] == "queue_full"
    assert sample(registry, "bridge_downlink_feedback_total", status="queued") == 1


async def test_feedback_beyond_the_queue_is_dropped_and_counted(
    metrics: DownlinkMetrics, published: Published, registry: CollectorRegistry
) -> None:
    gate = asyncio.Event()

    async def blocked(topic: str, payload: bytes) -> None:
        await gate.wait()
        await published.publish(topic, payload)

    settings = FeedbackSettings(queue_size=2, workers=1)
    async with FeedbackPublisher(blocked, FeedbackTopics(PATTERN), metrics, settings) as publisher:
        for index in range(6):  # no await in between: the worker takes nothing meanwhile
            publisher.emit(Feedback(f"70B3D57ED000000{index}", FeedbackStatus.QUEUED))
        gate.set()
    assert len(published.messages) == 2
    assert sample(registry, "bridge_downlink_feedback_dropped_total") == 4


async def test_a_failing_publish_is_counted_and_the_workers_go_on(
    metrics: DownlinkMetrics, published: Published, registry: CollectorRegistry
) -> None:
    async with FeedbackPublisher(published.publish, FeedbackTopics(PATTERN), metrics) as publisher:
        published.failing = True
        publisher.emit(Feedback("70B3D57ED0000001", FeedbackStatus.QUEUED))
        await asyncio.sleep(0.01)
        published.failing = False
        publisher.emit(Feedback("70B3D57ED0000002", FeedbackStatus.QUEUED))
    assert [topic for topic, _ in published.messages] == ["fleet/70B3D57ED0000002/down/queued"]
    assert sample(registry, "bridge_downlink_feedback_dropped_total") == 1
