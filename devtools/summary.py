"""The local run's live summary: the simulator's counters, the bridge's /metrics, what reached the broker, and what
AWS IoT Core would have discarded or refused (the stand-in's counters)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

POOL_STATE_FAMILY = "bridge_pool_state"
CLIENT_STATE_FAMILY = "bridge_mqtt_client_state"


@dataclass(slots=True)
class BridgeFigures:
    """Totals read from the bridge's Prometheus text (summed over connections and other labels)."""

    accepted: float = 0.0
    published: float = 0.0
    dropped: dict[str, float] = field(default_factory=dict)
    rejected: dict[str, float] = field(default_factory=dict)
    registrations: dict[str, float] = field(default_factory=dict)
    downlinks_received: float = 0.0
    downlinks_sent: float = 0.0
    downlinks_failed: float = 0.0
    buffer_depth: float = 0.0
    pool_states: dict[str, str] = field(default_factory=dict)  # connection → state
    client_states: dict[str, int] = field(default_factory=dict)  # state → clients
    client_ids: list[str] = field(default_factory=list)  # the MQTT clients the metrics name


def _enum_states(samples: list[Any], family: str, key: str) -> dict[str, str]:
    """``{label value of key: current state}`` from a prometheus Enum family's samples."""
    current: dict[str, str] = {}
    for sample in samples:
        if sample.value == 1.0 and key in sample.labels:
            current[sample.labels[key]] = sample.labels[family]
    return current


def parse_metrics(text: str) -> BridgeFigures:
    figures = BridgeFigures()
    for family in text_string_to_metric_families(text):
        samples = [sample for sample in family.samples if not sample.name.endswith("_created")]
        total = sum(sample.value for sample in samples if sample.name in (family.name, family.name + "_total"))

        def by(label: str, samples: list[Any] = samples) -> dict[str, float]:
            grouped: Counter[str] = Counter()
            for sample in samples:
                grouped[sample.labels.get(label, "")] += sample.value
            return {key: value for key, value in grouped.items() if value}

        match family.name:
            case "bridge_uplinks_accepted":
                figures.accepted = total
            case "bridge_uplinks_published":
                figures.published = total
            case "bridge_uplinks_dropped":
                figures.dropped = by("reason")
            case "bridge_uplinks_rejected":
                figures.rejected = by("reason")
            case "bridge_registrations":
                figures.registrations = by("outcome")
            case "bridge_downlinks_received":
                figures.downlinks_received = total
            case "bridge_downlinks_sent":
                figures.downlinks_sent = total
            case "bridge_downlinks_failed":
                figures.downlinks_failed = total
            case "bridge_uplink_buffer_depth":
                figures.buffer_depth = total
            case "bridge_pool_state":
                figures.pool_states = _enum_states(samples, POOL_STATE_FAMILY, "connection")
            case "bridge_mqtt_client_state":
                states = _enum_states(samples, CLIENT_STATE_FAMILY, "client_id")
                figures.client_states = dict(Counter(states.values()))
                figures.client_ids = sorted(states)
    return figures


def _add(into: dict[str, float], more: dict[str, float]) -> dict[str, float]:
    return {key: into.get(key, 0.0) + more.get(key, 0.0) for key in into.keys() | more.keys()}


def combine(tasks: list[BridgeFigures]) -> BridgeFigures:
    """The figures of several bridge tasks as one; pool states keyed ``task<n>/<connection>`` when several."""
    if len(tasks) == 1:
        return tasks[0]
    total = BridgeFigures()
    for number, figures in enumerate(tasks, start=1):
        total.accepted += figures.accepted
        total.published += figures.published
        total.dropped = _add(total.dropped, figures.dropped)
        total.rejected = _add(total.rejected, figures.rejected)
        total.registrations = _add(total.registrations, figures.registrations)
        total.downlinks_received += figures.downlinks_received
        total.downlinks_sent += figures.downlinks_sent
        total.downlinks_failed += figures.downlinks_failed
        total.buffer_depth += figures.buffer_depth
        total.pool_states.update({f"task{number}/{key}": state for key, state in figures.pool_states.items()})
        for state, count in figures.client_states.items():
            total.client_states[state] = total.client_states.get(state, 0) + count
        total.client_ids.extend(figures.client_ids)
    return total


@dataclass(slots=True)
class AwsFigures:
    """From the IoT Core stand-in: what AWS would have discarded or refused, and the busiest rolling second."""

    total: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    by_client: dict[str, dict[str, int]] = field(default_factory=dict)
    max_1s_per_connection: int = 0  # publishes offered (in + out) in any rolling second on one connection
    max_1s_aggregate: int = 0

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> AwsFigures:
        windows = report["windows"]
        return cls(
            report["total"],
            dict(report["by_reason"]),
            {client: dict(reasons) for client, reasons in report["by_client"].items()},
            windows["max_1s_per_connection"],
            windows["max_1s_aggregate"],
        )

    def text(self) -> str:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.by_reason.items()))
        return f"{self.total} ({reasons})" if self.total else "none"


@dataclass(slots=True)
class Snapshot:
    """Every figure the summary shows, at one moment."""

    elapsed_secs: float
    lns_sent: int
    lns_accepted: int
    lns_statuses: dict[int, int]
    bridge: BridgeFigures
    at_broker: int
    devices_seen_at_broker: int
    things_registered: int
    downlinks_published: int
    downlinks_at_lns: int
    feedback: dict[str, int]
    aws: AwsFigures = field(default_factory=AwsFigures)
    accepted_by_task: list[float] = field(default_factory=list)  # with several bridge tasks
    downlinks_sent_by_task: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["lns_statuses"] = {str(status): count for status, count in self.lns_statuses.items()}
        return document


def _per_sec(now: float, before: float, secs: float) -> str:
    return f"{(now - before) / secs:7.1f}/s" if secs > 0 else "      -/s"


def summary_line(now: Snapshot, before: Snapshot) -> str:
    """One line: rates over the interval since ``before``, totals for the rest."""
    secs = now.elapsed_secs - before.elapsed_secs
    refused = sum(count for status, count in now.lns_statuses.items() if status != 202)
    pools = ", ".join(sorted(set(now.bridge.pool_states.values()))) or "-"
    clients = " ".join(f"{count} {state}" for state, count in sorted(now.bridge.client_states.items())) or "-"
    dropped = int(sum(now.bridge.dropped.values()))
    return (
        f"{now.elapsed_secs:6.0f}s  LNS sent {_per_sec(now.lns_sent, before.lns_sent, secs)}"
        f"  accepted {_per_sec(now.bridge.accepted, before.bridge.accepted, secs)}"
        f"  published {_per_sec(now.bridge.published, before.bridge.published, secs)}"
        f"  at broker {_per_sec(now.at_broker, before.at_broker, secs)}"
        f" | refused {refused} dropped {dropped} buffered {now.bridge.buffer_depth:.0f}"
        f" | things {now.things_registered}"
        f" | downlinks {now.downlinks_published} sent, {now.downlinks_at_lns} at LNS"
        f" | pool {pools} ({clients})"
        f" | AWS would discard {now.aws.text()}"
    )


def final_report(last: Snapshot) -> str:
    """The closing lines: totals of the whole run."""
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(last.lns_statuses.items())) or "none"
    per_task = []
    if len(last.accepted_by_task) > 1:
        per_task.append(
            "per task: uplinks accepted "
            + " / ".join(f"{count:.0f}" for count in last.accepted_by_task)
            + ", downlinks sent "
            + " / ".join(f"{count:.0f}" for count in last.downlinks_sent_by_task)
        )
    return "\n".join(
        [
            f"uplinks: {last.lns_sent} sent by the simulated LNSs ({statuses}), "
            f"{last.bridge.accepted:.0f} accepted and {last.bridge.published:.0f} published by the bridge, "
            f"{last.at_broker} received from mosquitto ({last.devices_seen_at_broker} devices)",
            f"dropped by reason: {last.bridge.dropped or 'none'}; refused at ingress: {last.bridge.rejected or 'none'}",
            f"things registered: {last.things_registered} "
            f"(registrations by outcome: {last.bridge.registrations or 'none'})",
            f"downlinks: {last.downlinks_published} published on MQTT, {last.downlinks_at_lns} reached the LNS, "
            f"feedback {dict(last.feedback) or 'none'}",
            f"AWS IoT Core would have discarded or refused (local stand-in): {last.aws.text()}; "
            f"busiest rolling second: {last.aws.max_1s_per_connection} publishes on one connection, "
            f"{last.aws.max_1s_aggregate} on all",
            *per_task,
        ]
    )
