"""Uplink rate limits of a pool: aggregate and per client, in publishes and in bytes.

AWS IoT discards publishes beyond 100/s per connection and throttles beyond 512 KiB/s per connection, so every
publish takes a grant here first: from the pool's aggregate limit (``uplinkRatePerSec``), from its client's publish
limit (``perClientRatePerSec``) and from its client's byte limit. The publish limits are
:class:`~bridge_domain.ratelimit.WindowedRate`: paced by a token bucket, and no rolling 1-second window ever holds
more than the limit, even after a burst; the byte limit is a token bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bridge_domain.quotas import BYTES_PER_SEC_PER_CONNECTION, MAX_PAYLOAD_BYTES, MAX_TOPIC_BYTES
from bridge_domain.ratelimit import TokenBucket, WindowedRate

AWS_IOT_BYTES_PER_SEC_PER_CONNECTION: Final = BYTES_PER_SEC_PER_CONNECTION
# The largest publish (the largest payload plus the longest topic) must fit in one byte grant.
MAX_PUBLISH_BYTES: Final = MAX_PAYLOAD_BYTES + MAX_TOPIC_BYTES
# A little burst absorbs timer lateness (the loop wakes up to ~1 ms late) without losing the target rate; at least
# 2 grants, so that one late wake-up is caught up at once.
BURST_SECS: Final = 0.01
MIN_PUBLISH_BURST: Final = 2.0


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
    """A publish-count limit: paced at ``rate_per_sec``, never more than that in any rolling second."""
    return WindowedRate.per_sec(rate_per_sec, burst=max(MIN_PUBLISH_BURST, rate_per_sec * BURST_SECS))


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

    def aggregate_wait(self, now: float) -> float:
        """Seconds until the pool may publish again (0: now)."""
        return self._aggregate.wait(now) if self._aggregate is not None else 0.0

    def client_wait(self, slot: int, now: float, size: int) -> float:
        """Seconds until client ``slot`` may publish ``size`` bytes (0: now)."""
        wait = self._per_client[slot].wait(now) if self._per_client is not None else 0.0
        if self._bytes is not None:
            wait = max(wait, self._bytes[slot].wait(now, size))
        return wait

    def take(self, slot: int, now: float, size: int, *, aggregate: bool = True) -> None:
        """Record a publish granted by :meth:`aggregate_wait` and :meth:`client_wait` both returning 0."""
        if aggregate and self._aggregate is not None:
            self._aggregate.take(now)
        if self._per_client is not None:
            self._per_client[slot].take(now)
        if self._bytes is not None:
            self._bytes[slot].take(now, size)
