"""Uplink rate limits of a pool: aggregate and per client, in publishes and in bytes.

AWS IoT discards publishes beyond 100/s per connection and throttles beyond 512 KiB/s per connection, so every
publish takes a grant here first: from the pool's aggregate limit (``uplinkRatePerSec``), from its client's publish
limit (``perClientRatePerSec``) and from its client's byte limit. Token buckets keep the flow smooth; a sliding
window on top of each publish limit guarantees that no 1-second window holds more than the limit, even after a
burst.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from bridge_domain.quotas import BYTES_PER_SEC_PER_CONNECTION, MAX_PAYLOAD_BYTES, MAX_TOPIC_BYTES
from bridge_domain.ratelimit import TokenBucket

AWS_IOT_BYTES_PER_SEC_PER_CONNECTION: Final = BYTES_PER_SEC_PER_CONNECTION
# The largest publish (the largest payload plus the longest topic) must fit in one byte grant.
MAX_PUBLISH_BYTES: Final = MAX_PAYLOAD_BYTES + MAX_TOPIC_BYTES
WINDOW_SECS: Final = 1.0
# A little burst absorbs timer lateness (the loop wakes up to ~1 ms late) without losing the target rate.
BURST_SECS: Final = 0.01


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


class SlidingWindow:
    """At most ``limit`` events in any window of ``window_secs``: the last ``limit`` event times are kept."""

    __slots__ = ("_times", "limit", "window_secs")

    def __init__(self, limit: int, window_secs: float = WINDOW_SECS) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self.window_secs = window_secs
        self._times: deque[float] = deque(maxlen=limit)

    def wait(self, now: float) -> float:
        """Seconds until one more event fits (0 when it fits now)."""
        times = self._times
        if len(times) < self.limit:
            return 0.0
        return max(0.0, times[0] + self.window_secs - now)

    def record(self, now: float) -> None:
        self._times.append(now)


class _PublishLimit:
    """A publish-count limit: a token bucket for pacing plus a sliding window as the hard guarantee."""

    __slots__ = ("bucket", "window")

    def __init__(self, rate_per_sec: float) -> None:
        self.bucket = TokenBucket(rate_per_sec=rate_per_sec, burst=max(2.0, rate_per_sec * BURST_SECS))
        self.window = SlidingWindow(max(1, int(rate_per_sec * WINDOW_SECS)))

    def wait(self, now: float) -> float:
        missing = 1.0 - self.bucket.available(now)
        bucket_wait = missing / self.bucket.rate_per_sec if missing > 1e-9 else 0.0
        return max(bucket_wait, self.window.wait(now))

    def take(self, now: float) -> None:
        self.bucket.try_acquire(now)
        self.window.record(now)


class _ByteLimit:
    __slots__ = ("bucket",)

    def __init__(self, bytes_per_sec: float) -> None:
        self.bucket = TokenBucket(
            rate_per_sec=bytes_per_sec, burst=max(float(MAX_PUBLISH_BYTES), bytes_per_sec * BURST_SECS)
        )

    def wait(self, now: float, size: int) -> float:
        size = min(size, int(self.bucket.burst))
        missing = size - self.bucket.available(now)
        return missing / self.bucket.rate_per_sec if missing > 1e-9 else 0.0

    def take(self, now: float, size: int) -> None:
        self.bucket.try_acquire(now, min(size, int(self.bucket.burst)))


class UplinkLimiter:
    """Grants for one pool: the aggregate limit first, then the chosen client's; a grant takes from all of them."""

    def __init__(self, limits: RateLimits, clients: int) -> None:
        self.limits = limits
        self._aggregate = _PublishLimit(limits.aggregate_per_sec) if limits.aggregate_per_sec is not None else None
        per_client = limits.per_client_per_sec
        self._per_client = [_PublishLimit(per_client) for _ in range(clients)] if per_client is not None else None
        per_bytes = limits.per_client_bytes_per_sec
        self._bytes = [_ByteLimit(per_bytes) for _ in range(clients)] if per_bytes is not None else None

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
