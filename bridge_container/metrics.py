"""Metrics: one prometheus_client registry per service, /metrics text, and CloudWatch EMF log lines.

Every component registers its own metric objects on the registry it is given; this module holds the uplink
path's families and the two ways out: Prometheus text for ``GET /metrics`` and an EMF line per connection and
interval on stdout, which CloudWatch Logs turns into metrics without an agent.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TextIO

import orjson
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bridge_container.states import ConnectionState

logger = logging.getLogger(__name__)

PROMETHEUS_CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
EMF_NAMESPACE: Final = "AwsIotBridge"
EMF_INTERVAL_SECS: Final = 60.0
CONNECTION_LABEL: Final = "connection"
# Accept → written to the broker: sub-millisecond when idle, up to the buffer's wait when over the rate.
LATENCY_BUCKETS_SECS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
_STATES: Final = [state.value for state in ConnectionState]


def new_registry() -> CollectorRegistry:
    """A registry of the service's own (no process-global default registry)."""
    return CollectorRegistry(auto_describe=True)


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``registry``."""
    return generate_latest(registry)


class UplinkMetrics:
    """The uplink path's metric families, labelled by connection id."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = [CONNECTION_LABEL]
        self.accepted = Counter(
            "bridge_uplinks_accepted", "Uplinks accepted into the buffer.", [*labels, "lns"], registry=registry
        )
        self.rejected = Counter(
            "bridge_uplinks_rejected",
            "LNS requests refused at ingress (4xx/503: authentication, replay, a field, the buffer), by reason.",
            [*labels, "lns", "reason"],
            registry=registry,
        )
        self.ignored = Counter(
            "bridge_ingress_ignored",
            "LNS events acknowledged but not published (joins, acks, other event types).",
            [*labels, "lns", "event"],
            registry=registry,
        )
        self.events = Counter(
            "bridge_events_accepted",
            "Device events (joins, status, locations, logs, ...) accepted into the uplink buffer, by LNS and event.",
            [*labels, "lns", "event"],
            registry=registry,
        )
        self.published = Counter(
            "bridge_uplinks_published", "Uplinks written to the broker.", labels, registry=registry
        )
        self.dropped = Counter(
            "bridge_uplinks_dropped",
            "Accepted uplinks that were not published, by reason.",
            [*labels, "reason"],
            registry=registry,
        )
        self.buffer_depth = Gauge(
            "bridge_uplink_buffer_depth", "Uplinks waiting for the rate limiter.", labels, registry=registry
        )
        self.buffer_capacity = Gauge(
            "bridge_uplink_buffer_capacity", "Size of the uplink buffer.", labels, registry=registry
        )
        self.in_flight = Gauge(
            "bridge_uplinks_in_flight",
            "Publishes handed to MQTT clients and not yet confirmed.",
            labels,
            registry=registry,
        )
        self.publish_latency = Histogram(
            "bridge_uplink_publish_latency_seconds",
            "Time from acceptance to the publish being written to the broker.",
            labels,
            buckets=LATENCY_BUCKETS_SECS,
            registry=registry,
        )
        self.client_state = Enum(
            "bridge_mqtt_client_state",
            "State of each MQTT client.",
            [*labels, "client_id"],
            states=_STATES,
            registry=registry,
        )
        self.pool_state = Enum(
            "bridge_pool_state", "State of each connection's pool.", labels, states=_STATES, registry=registry
        )
        self.registrations = Counter(
            "bridge_registrations", "Thing registrations by outcome.", [*labels, "outcome"], registry=registry
        )

    def forget(self, connection_id: str) -> None:
        """Drop every series of a removed connection."""
        for family in (
            self.accepted,
            self.rejected,
            self.ignored,
            self.events,
            self.published,
            self.dropped,
            self.buffer_depth,
            self.buffer_capacity,
            self.in_flight,
            self.publish_latency,
            self.client_state,
            self.pool_state,
            self.registrations,
        ):
            # prometheus_client has no public way to list a family's label sets.
            stale = [key for key in list(family._metrics) if key and key[0] == connection_id]
            for key in stale:
                family.remove(*key)


@dataclass(frozen=True, slots=True)
class EmfMetric:
    """One CloudWatch metric taken from a Prometheus family: counters as deltas, gauges as values."""

    name: str
    family: str
    unit: str = "Count"
    is_counter: bool = True


DEFAULT_EMF_METRICS: Final = (
    EmfMetric("UplinksAccepted", "bridge_uplinks_accepted"),
    EmfMetric("UplinksRejected", "bridge_uplinks_rejected"),
    EmfMetric("UplinksPublished", "bridge_uplinks_published"),
    EmfMetric("UplinksDropped", "bridge_uplinks_dropped"),
    EmfMetric("ThingsRegistered", "bridge_registrations"),
    EmfMetric("BufferDepth", "bridge_uplink_buffer_depth", is_counter=False),
)


@dataclass
class EmfEmitter:
    """Writes one EMF JSON line per connection and interval; counters are reported as increases since the last line."""

    registry: CollectorRegistry
    metrics: tuple[EmfMetric, ...] = DEFAULT_EMF_METRICS
    namespace: str = EMF_NAMESPACE
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    clock: Callable[[], float] = time.time
    _last: dict[tuple[str, str], float] = field(default_factory=dict)

    def _totals(self) -> dict[str, dict[str, float]]:
        """``{connection: {family: value summed over the other labels}}``."""
        wanted = {metric.family for metric in self.metrics}
        totals: dict[str, dict[str, float]] = {}
        for family in self.registry.collect():
            if family.name not in wanted:
                continue
            for sample in family.samples:
                if sample.name not in (family.name, family.name + "_total"):
                    continue
                connection = sample.labels.get(CONNECTION_LABEL)
                if connection is None:
                    continue
                per_connection = totals.setdefault(connection, {})
                per_connection[family.name] = per_connection.get(family.name, 0.0) + sample.value
        return totals

    def lines(self) -> list[bytes]:
        """The EMF documents for this interval (one per connection)."""
        timestamp_ms = int(self.clock() * 1000)
        documents: list[bytes] = []
        for connection, values in sorted(self._totals().items()):
            body: dict[str, object] = {"ConnectionId": connection}
            definitions: list[dict[str, str]] = []
            for metric in self.metrics:
                value = values.get(metric.family, 0.0)
                if metric.is_counter:
                    key = (connection, metric.family)
                    value, self._last[key] = value - self._last.get(key, 0.0), value
                body[metric.name] = value
                definitions.append({"Name": metric.name, "Unit": metric.unit})
            body["_aws"] = {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [
                    {"Namespace": self.namespace, "Dimensions": [["ConnectionId"]], "Metrics": definitions}
                ],
            }
            documents.append(orjson.dumps(body))
        return documents

    def emit(self) -> None:
        for line in self.lines():
            self.stream.write(line.decode() + "\n")
        self.stream.flush()

    async def run(self, interval_secs: float = EMF_INTERVAL_SECS) -> None:
        """Emit every ``interval_secs`` until cancelled (a last emission happens on cancellation)."""
        try:
            while True:
                await asyncio.sleep(interval_secs)
                self.emit()
        except asyncio.CancelledError:
            self.emit()
            raise
