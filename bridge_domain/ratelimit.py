"""Token-bucket arithmetic shared by every rate limit (uplinks, downlinks, CreateThing calls).

The bucket is pure: callers pass the time (``time.monotonic()`` or a test clock), so the same class serves
asyncio code, threads and tests with a controllable clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Float slack: a wait computed as (missing / rate) must always be enough after it has elapsed.
_EPSILON = 1e-9


@dataclass(slots=True)
class TokenBucket:
    """``rate_per_sec`` tokens a second, at most ``burst`` stored.

    With ``burst == rate_per_sec`` no 1-second window ever holds more than ``2 * rate`` grants; use a burst of 1
    (or a few) when each window must stay at the rate, as AWS IoT's per-connection limit requires.
    """

    rate_per_sec: float
    burst: float
    _tokens: float = field(init=False)
    _updated: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.rate_per_sec <= 0 or self.burst < 1:
            raise ValueError("rate_per_sec must be > 0 and burst >= 1")
        self._tokens = self.burst

    def _refill(self, now: float) -> None:
        if self._updated is not None and now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_per_sec)
        if self._updated is None or now > self._updated:
            self._updated = now

    def try_acquire(self, now: float, tokens: float = 1.0) -> float:
        """Take ``tokens`` if available and return 0; otherwise take nothing and return the seconds to wait."""
        self._refill(now)
        if self._tokens + _EPSILON >= tokens:
            self._tokens = max(0.0, self._tokens - tokens)
            return 0.0
        return (tokens - self._tokens) / self.rate_per_sec + _EPSILON

    def available(self, now: float) -> float:
        """Tokens that could be taken at ``now``."""
        self._refill(now)
        return self._tokens
