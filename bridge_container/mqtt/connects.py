"""At most one CONNECT per second per client ID from this process, as AWS IoT allows (it refuses the excess).

A connection that is replaced, or restarted by the Connections API, starts new clients with the client IDs its old
clients used a moment ago. Every client of the process asks the one :class:`ConnectPacer` before it starts, and
tells it when it stops; a client ID that connected or stopped less than the interval ago waits out the rest. CRT's
own reconnects are paced by ``ReconnectSettings`` (at least 1 s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

from bridge_domain.quotas import CONNECTS_PER_SEC_PER_CLIENT_ID

# A tenth of a second beyond AWS's second: the broker counts when the CONNECT arrives, not when it left.
CONNECT_MARGIN_SECS: Final = 0.1
CONNECT_INTERVAL_SECS: Final = 1.0 / CONNECTS_PER_SEC_PER_CLIENT_ID + CONNECT_MARGIN_SECS


class ConnectPacer:
    """Spaces the starts of clients that share a client ID; one per process, shared by every pool."""

    def __init__(
        self,
        interval_secs: float = CONNECT_INTERVAL_SECS,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval_secs = interval_secs
        self._clock = clock
        self._sleep = sleep
        self._last: dict[str, float] = {}

    def record(self, client_id: str) -> None:
        """``client_id`` connected (or may have, until it stopped) just now."""
        now = self._clock()
        # Forget the ones that no longer hold anything up, so the map stays as small as the recent clients.
        self._last = {key: at for key, at in self._last.items() if now - at < self.interval_secs}
        self._last[client_id] = now

    def __len__(self) -> int:
        """Client IDs still within their interval."""
        return len(self._last)

    def wait_secs(self, client_id: str) -> float:
        """Seconds until ``client_id`` may connect again (0: now)."""
        last = self._last.get(client_id)
        return 0.0 if last is None else max(0.0, last + self.interval_secs - self._clock())

    async def before_connect(self, client_id: str) -> None:
        """Wait until ``client_id`` may connect, then count the connect."""
        wait = self.wait_secs(client_id)
        if wait > 0.0:
            await self._sleep(wait)
        self.record(client_id)
