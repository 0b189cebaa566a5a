"""The downlink rate limit: at most ``downlinkRatePerSec`` requests to the network servers in any one second.

A token bucket with a small burst keeps the flow smooth and absorbs the event loop's timer lateness (a bucket of
one token would lose every late wake-up and fall short of the rate); a log of the last ``rate`` grant times then
makes the limit hard: a request is only granted when the one ``rate`` grants earlier is at least a second old,
so no one-second window ever holds more than ``rate`` requests, retries included.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bridge_domain.ratelimit import TokenBucket

WINDOW_SECS = 1.0
# A twentieth of a second's worth of tokens: enough to catch up after a late timer, small enough to stay smooth.
BURST_FRACTION_OF_RATE = 0.05


@dataclass(frozen=True, slots=True)
class RateSettings:
    """``rate_per_sec`` grants a second at most; ``burst`` is the bucket size (default: 5 % of the rate, ≥ 1)."""

    rate_per_sec: int
    burst: float | None = None

    def bucket_size(self) -> float:
        if self.burst is not None:
            return self.burst
        return max(1.0, self.rate_per_sec * BURST_FRACTION_OF_RATE)


class RateLimiter:
    """Grants requests in arrival order (FIFO) within :class:`RateSettings`."""

    def __init__(
        self,
        settings: RateSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if settings.rate_per_sec < 1:
            raise ValueError("rate_per_sec must be at least 1")
        self._bucket = TokenBucket(rate_per_sec=float(settings.rate_per_sec), burst=settings.bucket_size())
        self._granted: deque[float] = deque(maxlen=settings.rate_per_sec)
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()  # asyncio.Lock wakes waiters in FIFO order

    def _wait_secs(self, now: float) -> float:
        """0 and one grant taken, or the seconds to wait before asking again."""
        granted = self._granted
        if len(granted) == granted.maxlen:
            window_wait = granted[0] + WINDOW_SECS - now
            if window_wait > 0:
                return window_wait
        wait = self._bucket.try_acquire(now)
        if wait == 0:
            granted.append(now)
        return wait

    async def acquire(self) -> None:
        """Return once one more request may go out."""
        async with self._lock:
            while True:
                wait = self._wait_secs(self._clock())
                if wait <= 0:
                    return
                # Never sleep less than a millisecond: the loop's timers are no finer, a shorter sleep only spins.
                await self._sleep(max(wait, 0.001))
