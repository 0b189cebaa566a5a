"""What a connection's dashboard shows: counters from the metrics registry, rates over the last minutes, and why.

Nothing here runs on the uplink path. Figures are read from the Prometheus registry when a page asks (every few
seconds while one is open); the rate history is built from those reads, at most one sample a second, for
:data:`HISTORY_SECS`. The "why" of a client's state is the last warning the MQTT adapter logged for its client ID,
kept by :class:`ClientEvents` (a logging handler: it sees only warnings and errors, never the publish path).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry

HISTORY_SECS: Final = 600.0  # ten minutes of rates
MIN_SAMPLE_GAP_SECS: Final = 1.0
MIN_WINDOW_SECS: Final = 30.0
MAX_EVENTS_PER_CLIENT: Final = 5
SPARK_WIDTH: Final = 300
SPARK_HEIGHT: Final = 48
_CONNECTION_LABEL: Final = "connection"


@dataclass(frozen=True, slots=True)
class Figures:
    """Every sample of the registry that carries ``connection=<id>``: family → [(labels without it, value)]."""

    samples: dict[str, list[tuple[dict[str, str], float]]]

    def total(self, name: str) -> float:
        return sum(value for _labels, value in self.samples.get(name, []))

    def by(self, name: str, *label_names: str) -> list[tuple[str, float]]:
        """``name`` summed per value of ``label_names`` (joined with ' / '), largest first, zeros left out."""
        summed: dict[str, float] = defaultdict(float)
        for labels, value in self.samples.get(name, []):
            summed[" / ".join(labels.get(label, "") for label in label_names)] += value
        return sorted(((key, value) for key, value in summed.items() if value), key=lambda item: -item[1])


def read_figures(registry: CollectorRegistry, connection_id: str) -> Figures:
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in registry.collect():
        for sample in family.samples:
            if sample.labels.get(_CONNECTION_LABEL) != connection_id or sample.name.endswith("_created"):
                continue
            labels = {key: value for key, value in sample.labels.items() if key != _CONNECTION_LABEL}
            samples[sample.name].append((labels, sample.value))
    return Figures(dict(samples))


@dataclass(slots=True)
class RateHistory:
    """Uplinks published and downlinks sent per second, from cumulative counters read now and then."""

    clock: Callable[[], float] = time.monotonic
    samples: deque[tuple[float, float, float]] = field(default_factory=deque)  # (time, published, sent)

    def record(self, published: float, sent: float) -> None:
        now = self.clock()
        if self.samples and now - self.samples[-1][0] < MIN_SAMPLE_GAP_SECS:
            return
        if self.samples and (published < self.samples[-1][1] or sent < self.samples[-1][2]):
            self.samples.clear()  # the connection restarted: its counters began again
        self.samples.append((now, published, sent))
        while self.samples and now - self.samples[0][0] > HISTORY_SECS:
            self.samples.popleft()

    def rates(self) -> list[tuple[float, float, float]]:
        """(seconds ago, uplinks/s, downlinks/s) between consecutive samples, oldest first."""
        now = self.clock()
        rates = []
        for (start, up_before, down_before), (end, up_after, down_after) in itertools.pairwise(self.samples):
            span = end - start
            rates.append((now - end, (up_after - up_before) / span, (down_after - down_before) / span))
        return rates


def sparkline(points: list[tuple[float, float]]) -> str:
    """SVG polyline points for (seconds ago, value) pairs: newest on the right, scaled to the largest value.

    The time axis spans the history held (at least :data:`MIN_WINDOW_SECS`, at most :data:`HISTORY_SECS`).
    """
    if not points:
        return ""
    window_secs = min(HISTORY_SECS, max(MIN_WINDOW_SECS, max(ago for ago, _value in points)))
    top = max(max(value for _ago, value in points), 1.0) * 1.25  # headroom: a steady rate is not drawn on the edge
    coordinates = []
    for ago, value in points:
        x = SPARK_WIDTH * (1.0 - min(ago, window_secs) / window_secs)
        y = SPARK_HEIGHT - (SPARK_HEIGHT - 2) * value / top - 1
        coordinates.append(f"{x:.1f},{y:.1f}")
    return " ".join(coordinates)


class ClientEvents(logging.Handler):
    """The last warnings and errors logged about each MQTT client or connection (the record's first argument: a
    client ID, or a connection ID as in "connection %s could not be started"), with the exception's last line."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.events: dict[str, deque[tuple[float, str]]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if not isinstance(args, tuple) or not args or not isinstance(args[0], str):
            return
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return
        if record.exc_info and record.exc_info[1] is not None:  # the traceback stays in the log; its last line here
            error = record.exc_info[1]
            message = f"{message}: {type(error).__name__}: {error}"
        ring = self.events.setdefault(args[0], deque(maxlen=MAX_EVENTS_PER_CLIENT))
        ring.append((record.created, message))
        if len(self.events) > 1000:  # client IDs of long-gone connections
            self.events.pop(next(iter(self.events)))

    def last(self, client_id: str) -> tuple[float, str] | None:
        ring = self.events.get(client_id)
        return ring[-1] if ring else None
