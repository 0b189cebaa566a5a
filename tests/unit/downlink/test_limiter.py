"""The downlink rate limiter on a virtual clock: no one-second window above the rate, late timers absorbed."""

from __future__ import annotations

import pytest

from bridge_container.downlink.limiter import RateLimiter, RateSettings


class VirtualTime:
    """A clock that only moves when the limiter sleeps; ``lateness_secs`` plays an event loop waking up late."""

    def __init__(self, lateness_secs: float = 0.0) -> None:
        self.now = 1000.0
        self.lateness_secs = lateness_secs

    def clock(self) -> float:
        return self.now

    async def sleep(self, secs: float) -> None:
        self.now += secs + self.lateness_secs


async def grant_times(limiter: RateLimiter, time: VirtualTime, count: int) -> list[float]:
    granted = []
    for _ in range(count):
        await limiter.acquire()
        granted.append(time.now)
    return granted


def max_in_one_second(times: list[float]) -> int:
    """Most grants inside any half-open window [t, t + 1 s)."""
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.parametrize("lateness_secs", [0.0, 0.0004, 0.003])
async def test_no_one_second_window_holds_more_than_the_rate(lateness_secs: float) -> None:
    time = VirtualTime(lateness_secs)
    limiter = RateLimiter(RateSettings(rate_per_sec=100), clock=time.clock, sleep=time.sleep)
    times = await grant_times(limiter, time, 500)
    assert max_in_one_second(times) <= 100


async def test_late_timers_do_not_cost_rate() -> None:
    time = VirtualTime(lateness_secs=0.0004)  # a typical event-loop wake-up delay
    limiter = RateLimiter(RateSettings(rate_per_sec=100), clock=time.clock, sleep=time.sleep)
    times = await grant_times(limiter, time, 501)
    achieved_per_sec = 500 / (times[-1] - times[0])
    assert achieved_per_sec > 99.0


async def test_a_burst_is_limited_to_the_bucket() -> None:
    time = VirtualTime()
    limiter = RateLimiter(RateSettings(rate_per_sec=100, burst=5), clock=time.clock, sleep=time.sleep)
    times = await grant_times(limiter, time, 20)
    assert times.count(times[0]) == 5
    assert times[-1] - times[0] == pytest.approx(15 / 100, abs=0.002)


def test_the_default_burst_is_a_twentieth_of_the_rate_and_at_least_one() -> None:
    assert RateSettings(100).bucket_size() == 5
    assert RateSettings(3).bucket_size() == 1


def test_a_rate_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(RateSettings(0))
