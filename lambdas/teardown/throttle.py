"""A blocking, thread-safe gate in front of one API operation, keeping its calls within the account quota."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bridge_domain.ratelimit import WindowedRate


class RateGate:
    """At most ``rate_per_sec`` passes in any second across all threads (burst 1: passes are spaced 1/rate apart)."""

    def __init__(
        self,
        rate_per_sec: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = WindowedRate.per_sec(rate_per_sec)
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def wait(self) -> float:
        """Block until this caller may call; return the clock reading at which the pass was granted."""
        while True:
            with self._lock:
                now = self._clock()
                wait_secs = self._rate.try_take(now)
            if wait_secs <= 0:
                return now
            # Sleep outside the lock: the other threads may compute their own waits meanwhile.
            self._sleep(wait_secs)
