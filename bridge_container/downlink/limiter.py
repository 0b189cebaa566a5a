"""The downlink rate limit: at most ``downlinkRatePerSec`` requests to the network servers in any one second.

The arithmetic is :class:`~bridge_domain.ratelimit.WindowedRate`: a token bucket with a small burst keeps the flow
smooth and absorbs the event loop's timer lateness (a bucket of one token would lose every late wake-up and fall
short of the rate); its sliding window makes the limit hard, so no rolling window of a second plus
``LNS_JITTER_MARGIN_SECS`` ever holds more than ``rate`` requests, retries included, and the network server,
counting arrivals, sees no second above the rate as long as request latencies vary by less than the margin. This
module only adds the waiting: callers are served in arrival order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from bridge_domain.budget import RECEIVER_WINDOW_SECS
from bridge_domain.ratelimit import WindowedRate

# A twentieth of a second's worth of tokens: enough to catch up after a late timer, small enough to stay smooth.
BURST_FRACTION_OF_RATE: Final = 0.05
# An HTTPS request's latency varies more than an MQTT publish's: with the MQTT margin (50 ms) a local network
# server counted 101 requests in one second in 4 of 11 benchmark runs, the 101 spanning 0.995 s at the shortest.
LNS_JITTER_MARGIN_SECS: Final = 0.1
LNS_WINDOW_SECS: Final = RECEIVER_WINDOW_SECS + LNS_JITTER_MARGIN_SECS
# Never sleep less than a millisecond: the loop's timers are no finer, a shorter sleep only spins.
MIN_SLEEP_SECS: Final = 0.001


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
        self._rate = WindowedRate(
            limit=settings.rate_per_sec, window_secs=LNS_WINDOW_SECS, burst=settings.bucket_size()
        )
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()  # asyncio.Lock wakes waiters in FIFO order

    async def acquire(self) -> None:
        """Return once one more request may go out."""
        async with self._lock:
            while (wait_secs := self._rate.try_take(self._clock())) > 0:
                await self._sleep(max(wait_secs, MIN_SLEEP_SECS))
