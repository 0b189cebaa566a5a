"""Feedback on a downlink's fate, published on ``<downlink topic>/<status>`` (``tpx/things/<DevEUI>/downlink/failed``).

Feedback leaves through a bounded queue and a few workers, so a slow publish never holds up the MQTT message
handler or the network-server calls; when the queue is full the message is dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson

from bridge_container.downlink.metrics import DownlinkMetrics
from bridge_container.downlink.reasons import FailureReason, FeedbackStatus
from bridge_container.tasks import spawn
from bridge_domain.exceptions import TopicError
from bridge_domain.topics import DEV_EUI_FIELD, TopicPattern

logger = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Feedback:
    """One feedback message; ``dev_eui`` is the DevEUI level of the downlink topic it answers."""

    dev_eui: str
    status: FeedbackStatus
    correlation_id: str | None = None
    reason: FailureReason | None = None
    detail: str | None = None
    lns: str | None = None
    lns_reference: str | None = None
    report: Mapping[str, Any] | None = None  # the network server's own report, as received

    def document(self, now: datetime) -> dict[str, Any]:
        """The JSON document (fields without a value left out)."""
        document: dict[str, Any] = {
            "DevEUI": self.dev_eui,
            "status": self.status.value,
            "time": now.isoformat(timespec="milliseconds"),
        }
        optional = {
            "correlationId": self.correlation_id,
            "reason": None if self.reason is None else self.reason.value,
            "detail": self.detail,
            "lns": self.lns,
            "lnsReference": self.lns_reference,
            "report": self.report,
        }
        document.update({key: value for key, value in optional.items() if value is not None})
        return document


class FeedbackTopics:
    """The feedback topic of each status, derived once from the downlink pattern."""

    def __init__(self, downlink_pattern: TopicPattern) -> None:
        self._patterns = {status: downlink_pattern.child(status.value) for status in FeedbackStatus}

    def topic(self, status: FeedbackStatus, dev_eui: str) -> str:
        return self._patterns[status].render({DEV_EUI_FIELD: dev_eui})


@dataclass(frozen=True, slots=True)
class FeedbackSettings:
    queue_size: int = 2_000
    workers: int = 4  # several: publish_control may wait for a pool client's per-connection rate
    publish_timeout_secs: float = 5.0
    drain_deadline_secs: float = 2.0


class FeedbackPublisher:
    """An async context manager: ``emit`` enqueues, background workers publish through ``publish``."""

    def __init__(
        self,
        publish: Publish,
        topics: FeedbackTopics,
        metrics: DownlinkMetrics,
        settings: FeedbackSettings | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._publish = publish
        self._topics = topics
        self._metrics = metrics
        self._settings = settings or FeedbackSettings()
        self._clock = clock
        self._queue: asyncio.Queue[tuple[str, bytes, FeedbackStatus]] = asyncio.Queue(self._settings.queue_size)
        self._workers: list[asyncio.Task[None]] = []

    def emit(self, feedback: Feedback) -> None:
        """Queue ``feedback`` for publishing; never blocks."""
        try:
            topic = self._topics.topic(feedback.status, feedback.dev_eui)
        except TopicError as exc:
            logger.warning("downlink feedback not published: no valid topic for it (%s)", exc)
            self._metrics.feedback_dropped()
            return
        payload = orjson.dumps(feedback.document(self._clock()))
        try:
            self._queue.put_nowait((topic, payload, feedback.status))
        except asyncio.QueueFull:
            self._metrics.feedback_dropped()

    async def _work(self) -> None:
        while True:
            topic, payload, status = await self._queue.get()
            try:
                async with asyncio.timeout(self._settings.publish_timeout_secs):
                    await self._publish(topic, payload)
            except Exception as exc:  # a failed publish must not stop the worker
                logger.warning("downlink feedback on %s not published: %s", topic, exc)
                self._metrics.feedback_dropped()
            else:
                self._metrics.feedback_published(status)
            finally:
                self._queue.task_done()

    async def __aenter__(self) -> FeedbackPublisher:
        self._workers = [spawn(self._work(), f"downlink-feedback-{index}") for index in range(self._settings.workers)]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.drain_deadline_secs):
                await self._queue.join()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        left = self._queue.qsize()
        if left:
            logger.warning("%d downlink feedback message(s) not published before shutdown", left)
            for _ in range(left):
                self._metrics.feedback_dropped()
