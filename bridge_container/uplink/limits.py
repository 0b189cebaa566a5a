"""Publish limits of a pool: aggregate and per client, in publishes and in bytes, both directions counted.

AWS IoT discards publishes beyond 100/s per connection, counting what the client publishes and what is delivered
to it together, and throttles beyond 512 KiB/s per connection. So every publish takes a grant here first: from the
pool's aggregate uplink limit (``uplinkRatePerSec``; feedback does not take from it), from its client's publish
limit (``perClientRatePerSec``) and from its client's byte limit; every message delivered to a client is recorded
in that client's publish limit too (:meth:`UplinkLimiter.record_inbound`). A client holding the downlink
subscription has its own publishes capped below its limit by the deliveries it reserves room for
(:mod:`bridge_domain.budget`).

The publish limits are :class:`~bridge_domain.ratelimit.WindowedRate`: paced by a token bucket, and no rolling
window of ``1 s + JITTER_MARGIN_SECS`` ever holds more than the limit, even after a burst, so that jitter between
here and the broker does not put more than the limit into any second the broker counts. The byte limit is a token
bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bridge_domain.budget import LIMIT_WINDOW_SECS
from bridge_domain.quotas import BYTES_PER_SEC_PER_CONNECTION, MAX_PAYLOAD_BYTES, MAX_TOPIC_BYTES
from bridge_domain.ratelimit import TokenBucket, WindowedRate

AWS_IOT_BYTES_PER_SEC_PER_CONNECTION: Final = BYTES_PER_SEC_PER_CONNECTION
# The largest publish (the largest payload plus the longest topic) must fit in one byte grant.
MAX_PUBLISH_BYTES: Final = MAX_PAYLOAD_BYTES + MAX_TOPIC_BYTES
# A little burst absorbs timer lateness (the loop wakes up to ~1 ms late) without losing the target rate; at least
# 2 grants, so that one late wake-up is caught up at once.
BURST_SECS: Final = 0.01
MIN_PUBLISH_BURST: Final = 2.0
# A subscribing client whose whole budget is reserved for deliveries still publishes now and then (feedback).
MIN_OUTBOUND_PER_SEC: Final = 1.0


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The limits one pool enforces; ``None`` lifts a limit (only for benchmarks against a local broker)."""

    aggregate_per_sec: float | None
    per_client_per_sec: float | None
    per_client_bytes_per_sec: float | None = AWS_IOT_BYTES_PER_SEC_PER_CONNECTION

    @classmethod
    def lifted(cls) -> RateLimits:
        return cls(aggregate_per_sec=None, per_client_per_sec=None, per_client_bytes_per_sec=None)

    @property
    def any(self) -> bool:
        return not (
            self.aggregate_per_sec is None and self.per_client_per_sec is None and self.per_client_bytes_per_sec is None
        )


def publish_limit(rate_per_sec: float) -> WindowedRate:
    """A publish-count limit: never more than ``rate_per_sec`` in any window of ``LIMIT_WINDOW_SECS``.

    It paces at ``rate / LIMIT_WINDOW_SECS``; below one publish a second it keeps the rate itself.
    """
    burst = max(MIN_PUBLISH_BURST, rate_per_sec * BURST_SECS)
    if rate_per_sec < 1.0:
        return WindowedRate.per_sec(rate_per_sec, burst=burst)
    return WindowedRate(limit=int(rate_per_sec), window_secs=LIMIT_WINDOW_SECS, burst=burst)


def byte_limit(bytes_per_sec: float) -> TokenBucket:
    """A byte limit; its burst holds at least the largest publish (a larger request waits for a full bucket)."""
    return TokenBucket(rate_per_sec=bytes_per_sec, burst=max(float(MAX_PUBLISH_BYTES), bytes_per_sec * BURST_SECS))


class UplinkLimiter:
    """Grants for one pool: the aggregate limit first, then the chosen client's; a grant takes from all of them."""

    def __init__(self, limits: RateLimits, clients: int) -> None:
        self.limits = limits
        aggregate, per_client, per_bytes = (
            limits.aggregate_per_sec,
            limits.per_client_per_sec,
            limits.per_client_bytes_per_sec,
        )
        self._aggregate = publish_limit(aggregate) if aggregate is not None else None
        self._per_client = [publish_limit(per_client) for _ in range(clients)] if per_client is not None else None
        self._bytes = [byte_limit(per_bytes) for _ in range(clients)] if per_bytes is not None else None
        # Publishes of the clients that receive deliveries, capped below their limit (see reserve_inbound).
        self._outbound_caps: dict[int, WindowedRate] = {}

    def aggregate_wait(self, now: float) -> float:
        """Seconds until the pool may publish again (0: now)."""
        return self._aggregate.wait(now) if self._aggregate is not None else 0.0

    def client_wait(self, slot: int, now: float, size: int) -> float:
        """Seconds until client ``slot`` may publish ``size`` bytes (0: now)."""
        wait = self._per_client[slot].wait(now) if self._per_client is not None else 0.0
        if self._bytes is not None:
            wait = max(wait, self._bytes[slot].wait(now, size))
        cap = self._outbound_caps.get(slot)
        if cap is not None:
            wait = max(wait, cap.wait(now))
        return wait

    def take(self, slot: int, now: float, size: int, *, aggregate: bool = True) -> None:
        """Record a publish granted by :meth:`aggregate_wait` and :meth:`client_wait` both returning 0."""
        if aggregate and self._aggregate is not None:
            self._aggregate.take(now)
        if self._per_client is not None:
            self._per_client[slot].take(now)
        if self._bytes is not None:
            self._bytes[slot].take(now, size)
        cap = self._outbound_caps.get(slot)
        if cap is not None:
            cap.take(now)

    def record_inbound(self, slot: int, now: float) -> None:
        """Count a message delivered to client ``slot``: AWS counts it against the same per-connection limit."""
        if self._per_client is not None:
            self._per_client[slot].count(now)

    def reserve_inbound(self, slots: set[int], reserved_per_sec: int) -> None:
        """Cap the publishes of ``slots`` so that ``reserved_per_sec`` deliveries fit beside them; others uncapped.

        A slot that keeps its reservation keeps its cap (and the publishes it has counted); a slot that leaves it is
        still held by its full publish limit, which counts every delivery it received.
        """
        per_client = self.limits.per_client_per_sec
        if per_client is None or reserved_per_sec <= 0:
            self._outbound_caps = {}
            return
        outbound = per_client - reserved_per_sec
        self._outbound_caps = {
            slot: self._outbound_caps.get(slot) or publish_limit(max(outbound, MIN_OUTBOUND_PER_SEC)) for slot in slots
        }
