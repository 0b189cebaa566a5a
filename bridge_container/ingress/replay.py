"""The replay check of signed ThingPark requests: each Token is accepted once while its Time is within the drift.

A request is signed over its Time, and accepted only while that Time lies within ``maxTimeDriftSecs`` of the
bridge's clock; after that window its Token is refused by the drift check anyway, so each remembered Token can be
forgotten at ``Time + maxTimeDriftSecs``. Only Tokens that verified are remembered (nobody without the AS key can
fill the cache), and only once their request was accepted (a request refused with 429 may come back).

Memory is bounded by ``max_entries``. When that many Tokens are within their validity, a new signed request is
refused (503 with Retry-After, counted as ``replay_cache_full``) rather than evicting an entry: eviction would
let the evicted Token be replayed, failing open exactly when the bridge is under the most signed traffic.
"""

from __future__ import annotations

import heapq
import math
from typing import Final

from bridge_container.ingress.exceptions import ReplayCacheFullError, ReplayedError

# A remembered Token costs about 240 bytes (measured with tracemalloc: dict and heap entries and the float, 126
# bytes; the 64-character key, 113), so 100,000 take about 23 MiB. They hold rate * maxTimeDriftSecs <= 100,000:
# with the default 60 s drift, 1,666 signed requests/s, above the 1,000 uplinks/s ThingPark's connector offers.
MAX_REPLAY_ENTRIES: Final = 100_000


class ReplayCache:
    """Tokens accepted and still within their validity, each with the time (epoch seconds) it may be forgotten."""

    def __init__(self, max_entries: int = MAX_REPLAY_ENTRIES) -> None:
        self.max_entries = max_entries
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def check(self, token: str, now: float) -> None:
        """Raise :class:`ReplayedError` if ``token`` was accepted and is still valid, or
        :class:`ReplayCacheFullError` if there is no room to remember it."""
        expiry = self._expiry.get(token)
        if expiry is not None and expiry > now:
            raise ReplayedError("replayed", "this signed request was already accepted", field="Token")
        if len(self._expiry) >= self.max_entries:
            self._forget_expired(now)
            if len(self._expiry) >= self.max_entries:
                raise ReplayCacheFullError(max(1, math.ceil(self._heap[0][0] - now)))

    def remember(self, token: str, expires_at: float, now: float) -> None:
        """Remember an accepted ``token`` until ``expires_at``."""
        self._forget_expired(now)
        self._expiry[token] = expires_at
        heapq.heappush(self._heap, (expires_at, token))

    def forget(self, token: str) -> None:
        """Accept ``token`` again: its request was refused after all (its heap entry is skipped when it comes up)."""
        self._expiry.pop(token, None)

    def _forget_expired(self, now: float) -> None:
        heap = self._heap
        expiry = self._expiry
        while heap and heap[0][0] <= now:
            expires_at, token = heapq.heappop(heap)
            if expiry.get(token) == expires_at:
                del expiry[token]
