"""Downlink metrics on the service's Prometheus registry, one label value per connection."""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bridge_container.downlink.reasons import FailureReason, FeedbackStatus

LATENCY_BUCKETS_SECS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class DownlinkMetricFamilies:
    """The metric families; built once per registry because a registry refuses a second family of one name."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            "bridge_downlinks_received", "Messages taken from the downlink topic.", ["connection"], registry=registry
        )
        self.sent = Counter(
            "bridge_downlinks_sent",
            "Downlinks a network server accepted.",
            ["connection", "lns"],
            registry=registry,
        )
        self.failed = Counter(
            "bridge_downlinks_failed", "Downlinks that failed, by reason.", ["connection", "reason"], registry=registry
        )
        self.duplicates = Counter(
            "bridge_downlinks_duplicate",
            "Downlinks not sent again: the same message id, CorrelationID or queue-item id was already taken.",
            ["connection"],
            registry=registry,
        )
        self.expired = Counter(
            "bridge_downlinks_expired",
            "Downlinks not sent because their validity ended first.",
            ["connection"],
            registry=registry,
        )
        self.retries = Counter(
            "bridge_downlink_retries",
            "Requests to a network server repeated after a 5xx or timeout.",
            ["connection"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "bridge_downlink_queue_depth", "Downlinks waiting for the rate limiter.", ["connection"], registry=registry
        )
        self.latency = Histogram(
            "bridge_downlink_latency_seconds",
            "From the message leaving the broker to the network server accepting the downlink.",
            ["connection"],
            buckets=LATENCY_BUCKETS_SECS,
            registry=registry,
        )
        self.feedback = Counter(
            "bridge_downlink_feedback",
            "Feedback messages published, by status.",
            ["connection", "status"],
            registry=registry,
        )
        self.feedback_dropped = Counter(
            "bridge_downlink_feedback_dropped",
            "Feedback messages not published (feedback queue full or publish failed).",
            ["connection"],
            registry=registry,
        )


_FAMILIES: weakref.WeakKeyDictionary[CollectorRegistry, DownlinkMetricFamilies] = weakref.WeakKeyDictionary()


def families_for(registry: CollectorRegistry) -> DownlinkMetricFamilies:
    """The downlink families of ``registry``, created on first use (every connection of a service shares them)."""
    families = _FAMILIES.get(registry)
    if families is None:
        families = _FAMILIES[registry] = DownlinkMetricFamilies(registry)
    return families


@dataclass(slots=True)
class DownlinkMetrics:
    """One connection's view of the downlink families."""

    families: DownlinkMetricFamilies
    connection_id: str

    @classmethod
    def create(cls, registry: CollectorRegistry, connection_id: str) -> DownlinkMetrics:
        return cls(families_for(registry), connection_id)

    def received(self) -> None:
        self.families.received.labels(self.connection_id).inc()

    def sent(self, lns: str, latency_secs: float, attempts: int) -> None:
        self.families.sent.labels(self.connection_id, lns).inc()
        self.families.latency.labels(self.connection_id).observe(latency_secs)
        if attempts > 1:
            self.families.retries.labels(self.connection_id).inc(attempts - 1)

    def failed(self, reason: FailureReason, attempts: int = 1) -> None:
        self.families.failed.labels(self.connection_id, reason.value).inc()
        if attempts > 1:
            self.families.retries.labels(self.connection_id).inc(attempts - 1)

    def duplicate(self) -> None:
        self.families.duplicates.labels(self.connection_id).inc()

    def expired(self) -> None:
        self.families.expired.labels(self.connection_id).inc()

    def set_queue_depth(self, depth: int) -> None:
        self.families.queue_depth.labels(self.connection_id).set(depth)

    def feedback_published(self, status: FeedbackStatus) -> None:
        self.families.feedback.labels(self.connection_id, status.value).inc()

    def feedback_dropped(self) -> None:
        self.families.feedback_dropped.labels(self.connection_id).inc()

    def forget(self) -> None:
        """Drop this connection's gauge so a removed connection stops reporting a depth."""
        with contextlib.suppress(KeyError):
            self.families.queue_depth.remove(self.connection_id)
