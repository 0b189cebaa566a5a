"""Rate-limit arithmetic shared by every limit (uplinks, downlinks, control-plane calls), written once.

Everything here is pure: callers pass the time (``time.monotonic()`` or a test clock), so the same classes serve
asyncio code, threads and tests with a controllable clock. Three parts:

* :class:`TokenBucket` paces: ``rate_per_sec`` tokens a second, at most ``burst`` stored (also used for bytes);
* :class:`SlidingWindow` guarantees: at most ``limit`` events in any rolling window of ``window_secs``;
* :class:`WindowedRate` combines them for counted grants (publishes, requests, API calls): the bucket keeps the
  flow smooth, the window makes the limit hard, even right after a burst that follows an idle spell.

Each has the same two calls: ``wait(now)`` (seconds until a grant fits, 0 when it fits now) and ``take(now)``
(record a grant that ``wait`` allowed); ``try_take(now)`` does both.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Final

WINDOW_SECS: Final = 1.0
# Float slack: a wait computed as (missing / rate) must always be enough after it has elapsed.
_EPSILON: Final = 1e-9


@dataclass(slots=True)
class TokenBucket:
    """``rate_per_sec`` tokens a second, at most ``burst`` stored.

    With ``burst == rate_per_sec`` a 1-second window can hold up to ``2 * rate`` grants: pair the bucket with a
    :class:`SlidingWindow` (that is :class:`WindowedRate`) when every window must stay at the rate.
    A request for more tokens than ``burst`` waits for a full bucket and empties it, instead of waiting forever.
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

    def wait(self, now: float, tokens: float = 1.0) -> float:
        """Seconds until ``tokens`` can be taken (0: now); takes nothing."""
        self._refill(now)
        missing = min(tokens, self.burst) - self._tokens
        return 0.0 if missing <= _EPSILON else missing / self.rate_per_sec + _EPSILON

    def take(self, now: float, tokens: float = 1.0) -> None:
        """Take ``tokens`` that :meth:`wait` allowed at ``now``."""
        self._refill(now)
        self._tokens = max(0.0, self._tokens - min(tokens, self.burst))

    def try_acquire(self, now: float, tokens: float = 1.0) -> float:
        """Take ``tokens`` if available and return 0; otherwise take nothing and return the seconds to wait."""
        wait = self.wait(now, tokens)
        if wait == 0.0:
            self.take(now, tokens)
        return wait

    def available(self, now: float) -> float:
        """Tokens that could be taken at ``now``."""
        self._refill(now)
        return self._tokens


class SlidingWindow:
    """At most ``limit`` events in any rolling window of ``window_secs``: the last ``limit`` event times are kept.

    An event at ``t`` still counts at ``t + window_secs - δ`` and no longer at ``t + window_secs``: every half-open
    window ``[s, s + window_secs)`` holds at most ``limit`` events.
    """

    __slots__ = ("_times", "limit", "window_secs")

    def __init__(self, limit: int, window_secs: float = WINDOW_SECS) -> None:
        if limit < 1 or window_secs <= 0:
            raise ValueError("limit must be >= 1 and window_secs > 0")
        self.limit = limit
        self.window_secs = window_secs
        self._times: deque[float] = deque(maxlen=limit)

    def wait(self, now: float) -> float:
        """Seconds until one more event fits (0 when it fits now)."""
        times = self._times
        if len(times) < self.limit:
            return 0.0
        return max(0.0, times[0] + self.window_secs - now)

    def take(self, now: float) -> None:
        """Record an event that :meth:`wait` allowed at ``now``."""
        self._times.append(now)


@dataclass(slots=True)
class WindowedRate:
    """At most ``limit`` grants in any rolling window of ``window_secs``, paced by a token bucket.

    The window is the guarantee, the bucket the pacing: ``pace_per_sec`` (default ``limit / window_secs``) with
    ``burst`` tokens stored. A burst above 1 absorbs a late timer without losing rate; the window then stops a burst
    after an idle spell from putting more than ``limit`` grants into one window.

    The guarantee and the pace are separate numbers so that a margin can be written in either. The receiver counts
    what arrives, not what left: AWS IoT discards publishes beyond 100 in any rolling second of a connection, and
    network and scheduling jitter can bring two grants closer together at the receiver than they were here, so a
    limiter running exactly at the limit can cross it there. Pacing below the limit (``pace_per_sec=95`` with
    ``limit=100``) or a window a little longer than the receiver's (``window_secs=1.05``) keeps that jitter inside
    the limit. :meth:`per_sec` keeps the numbers at the limit itself, as the bridge has always run them; the margin
    is to be chosen from a measurement against the receiver.
    """

    limit: int
    window_secs: float = WINDOW_SECS
    pace_per_sec: float | None = None
    burst: float = 1.0
    _bucket: TokenBucket = field(init=False)
    _window: SlidingWindow = field(init=False)

    def __post_init__(self) -> None:
        self._window = SlidingWindow(self.limit, self.window_secs)
        pace = self.pace_per_sec if self.pace_per_sec is not None else self.limit / self.window_secs
        self._bucket = TokenBucket(rate_per_sec=pace, burst=self.burst)

    @classmethod
    def per_sec(cls, rate_per_sec: float, *, burst: float = 1.0, window_secs: float = WINDOW_SECS) -> WindowedRate:
        """``rate_per_sec`` grants a second, paced at that rate, never more than it in any window.

        A rate below one per window still allows one grant per window; the bucket then spaces grants
        ``1 / rate_per_sec`` apart (0.5/s: one every 2 s).
        """
        if rate_per_sec <= 0:
            raise ValueError("rate_per_sec must be > 0")
        limit = max(1, math.floor(rate_per_sec * window_secs + _EPSILON))
        return cls(limit=limit, window_secs=window_secs, pace_per_sec=rate_per_sec, burst=burst)

    @property
    def rate_per_sec(self) -> float:
        """The pace grants are given at when asked for continuously."""
        return self._bucket.rate_per_sec

    def wait(self, now: float) -> float:
        """Seconds until one more grant fits both the pace and the window (0: now); takes nothing."""
        return max(self._window.wait(now), self._bucket.wait(now))

    def take(self, now: float) -> None:
        """Record a grant that :meth:`wait` allowed at ``now``."""
        self._bucket.take(now)
        self._window.take(now)

    def count(self, now: float) -> None:
        """Record an event that was not granted here (a message delivered to a client): it fills the window, and
        grants wait for it to leave, but it does not slow the pace."""
        self._window.take(now)

    def try_take(self, now: float) -> float:
        """Take a grant and return 0, or take nothing and return the seconds to wait before asking again."""
        wait = self.wait(now)
        if wait == 0.0:
            self.take(now)
        return wait
