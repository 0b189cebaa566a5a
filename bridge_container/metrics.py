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
from enum import StrEnum
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
        self.unauthorized = Counter(
            "bridge_ingress_unauthorized",
            "LNS requests refused for their credentials (401: token, signature, time), also counted as rejected.",
            [*labels, "lns"],
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
            "bridge_uplinks_published",
            "Uplinks the broker has: QoS 1 acknowledged by a PUBACK; QoS 0 written and its connection still up "
            "1 s later (or closed cleanly).",
            labels,
            registry=registry,
        )
        self.written = Counter(
            "bridge_uplinks_written",
            "QoS 0 uplinks written to the socket (no receipt: not proof that the broker received them).",
            labels,
            registry=registry,
        )
        self.at_risk = Counter(
            "bridge_uplinks_at_risk",
            "QoS 0 uplinks written in the last second before their connection dropped, by the drop's reason.",
            [*labels, "reason"],
            registry=registry,
        )
        self.republished = Counter(
            "bridge_uplinks_republished",
            "QoS 1 uplinks published again because their connection was lost before the PUBACK.",
            labels,
            registry=registry,
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
            self.unauthorized,
            self.ignored,
            self.events,
            self.published,
            self.written,
            self.at_risk,
            self.republished,
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


class EmfName(StrEnum):
    """The CloudWatch metric names the bridge emits; the stacks build the dashboard, alarms and scaling on them."""

    UPLINKS_ACCEPTED = "UplinksAccepted"
    UPLINKS_REJECTED = "UplinksRejected"
    INGRESS_UNAUTHORIZED = "IngressUnauthorized"
    UPLINKS_PUBLISHED = "UplinksPublished"
    UPLINKS_DROPPED = "UplinksDropped"
    UPLINKS_AT_RISK = "UplinksAtRisk"
    THINGS_REGISTERED = "ThingsRegistered"
    BUFFER_DEPTH = "BufferDepth"
    BUFFER_CAPACITY = "BufferCapacity"
    DOWNLINKS_RECEIVED = "DownlinksReceived"
    DOWNLINKS_SENT = "DownlinksSent"
    DOWNLINKS_FAILED = "DownlinksFailed"
    DOWNLINK_QUEUE_DEPTH = "DownlinkQueueDepth"
    FEEDBACK_DROPPED = "DownlinkFeedbackDropped"
    MQTT_CLIENTS = "MqttClients"


class EmfDimension(StrEnum):
    """Dimensions of the bridge's metrics: every metric has ConnectionId; a breakdown adds one more."""

    CONNECTION = "ConnectionId"
    REASON = "Reason"
    STATE = "State"
    OUTCOME = "Outcome"


@dataclass(frozen=True, slots=True)
class EmfMetric:
    """One CloudWatch metric taken from a Prometheus family: counters as deltas, gauges as values.

    With ``split_label`` the metric is reported once per value of that label, as dimension ``dimension`` beside
    the connection (``UplinksDropped`` by ``Reason``); without, summed over every label but the connection.
    """

    name: str
    family: str
    unit: str = "Count"
    is_counter: bool = True
    split_label: str | None = None
    dimension: EmfDimension | None = None


DEFAULT_EMF_METRICS: Final = (
    EmfMetric(EmfName.UPLINKS_ACCEPTED, "bridge_uplinks_accepted"),
    EmfMetric(EmfName.UPLINKS_REJECTED, "bridge_uplinks_rejected"),
    EmfMetric(EmfName.INGRESS_UNAUTHORIZED, "bridge_ingress_unauthorized"),
    EmfMetric(EmfName.UPLINKS_PUBLISHED, "bridge_uplinks_published"),
    EmfMetric(EmfName.UPLINKS_DROPPED, "bridge_uplinks_dropped"),
    EmfMetric(EmfName.UPLINKS_AT_RISK, "bridge_uplinks_at_risk"),
    EmfMetric(EmfName.THINGS_REGISTERED, "bridge_registrations"),
    EmfMetric(EmfName.BUFFER_DEPTH, "bridge_uplink_buffer_depth", is_counter=False),
    EmfMetric(EmfName.BUFFER_CAPACITY, "bridge_uplink_buffer_capacity", is_counter=False),
    EmfMetric(EmfName.DOWNLINKS_RECEIVED, "bridge_downlinks_received"),
    EmfMetric(EmfName.DOWNLINKS_SENT, "bridge_downlinks_sent"),
    EmfMetric(EmfName.DOWNLINKS_FAILED, "bridge_downlinks_failed"),
    EmfMetric(EmfName.DOWNLINK_QUEUE_DEPTH, "bridge_downlink_queue_depth", is_counter=False),
    EmfMetric(EmfName.FEEDBACK_DROPPED, "bridge_downlink_feedback_dropped"),
    # Breakdowns: one document per connection and label value.
    EmfMetric(EmfName.UPLINKS_REJECTED, "bridge_uplinks_rejected", split_label="reason", dimension=EmfDimension.REASON),
    EmfMetric(EmfName.UPLINKS_DROPPED, "bridge_uplinks_dropped", split_label="reason", dimension=EmfDimension.REASON),
    EmfMetric(EmfName.UPLINKS_AT_RISK, "bridge_uplinks_at_risk", split_label="reason", dimension=EmfDimension.REASON),
    EmfMetric(EmfName.DOWNLINKS_FAILED, "bridge_downlinks_failed", split_label="reason", dimension=EmfDimension.REASON),
    EmfMetric(EmfName.THINGS_REGISTERED, "bridge_registrations", split_label="outcome", dimension=EmfDimension.OUTCOME),
    # The clients of a connection in each state (summed over the tasks, the pool's size when all are OPENED).
    EmfMetric(
        EmfName.MQTT_CLIENTS,
        "bridge_mqtt_client_state",
        is_counter=False,
        split_label="bridge_mqtt_client_state",
        dimension=EmfDimension.STATE,
    ),
)

# (connection, breakdown dimension or None, label value or None)
_DocumentKey = tuple[str, EmfDimension | None, str | None]


@dataclass
class EmfEmitter:
    """Writes EMF JSON lines per connection (and breakdown) and interval; counters are increases since the last line."""

    registry: CollectorRegistry
    metrics: tuple[EmfMetric, ...] = DEFAULT_EMF_METRICS
    namespace: str = EMF_NAMESPACE
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    clock: Callable[[], float] = time.time
    _last: dict[tuple[_DocumentKey, str], float] = field(default_factory=dict)

    def _totals(self) -> dict[_DocumentKey, dict[EmfMetric, float]]:
        """``{document: {metric: value summed over the labels the document does not name}}``."""
        by_family: dict[str, list[EmfMetric]] = {}
        for metric in self.metrics:
            by_family.setdefault(metric.family, []).append(metric)
        totals: dict[_DocumentKey, dict[EmfMetric, float]] = {}
        for family in self.registry.collect():
            metrics = by_family.get(family.name)
            if metrics is None:
                continue
            for sample in family.samples:
                if sample.name not in (family.name, family.name + "_total"):
                    continue
                connection = sample.labels.get(CONNECTION_LABEL)
                if connection is None:
                    continue
                for metric in metrics:
                    key: _DocumentKey = (connection, None, None)
                    if metric.split_label is not None:
                        label_value = sample.labels.get(metric.split_label)
                        if label_value is None:
                            continue
                        key = (connection, metric.dimension, label_value)
                    values = totals.setdefault(key, {})
                    values[metric] = values.get(metric, 0.0) + sample.value
        return totals

    def lines(self) -> list[bytes]:
        """The EMF documents for this interval (one per connection, one per connection and breakdown value)."""
        timestamp_ms = int(self.clock() * 1000)
        documents: list[bytes] = []
        for key, values in sorted(self._totals().items(), key=lambda item: tuple(str(part) for part in item[0])):
            connection, dimension, label_value = key
            body: dict[str, object] = {EmfDimension.CONNECTION.value: connection}
            dimensions = [EmfDimension.CONNECTION.value]
            if dimension is not None and label_value is not None:
                body[dimension.value] = label_value
                dimensions.append(dimension.value)
            definitions: list[dict[str, str]] = []
            for metric in self.metrics:
                if (metric.split_label is None) != (dimension is None):
                    continue
                if metric not in values and dimension is not None:
                    continue  # a breakdown reports the label values seen; the connection's totals are all there
                value = values.get(metric, 0.0)
                if metric.is_counter:
                    last_key = (key, metric.name)
                    value, self._last[last_key] = value - self._last.get(last_key, 0.0), value
                body[str(metric.name)] = value
                definitions.append({"Name": str(metric.name), "Unit": metric.unit})
            body["_aws"] = {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [
                    {"Namespace": self.namespace, "Dimensions": [dimensions], "Metrics": definitions}
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
