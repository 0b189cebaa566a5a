"""The downlink rate limiter on a virtual clock: no window of a second plus the jitter margin above the rate (so no
second at the network server is), late timers absorbed."""

from __future__ import annotations

import asyncio

import pytest

from bridge_container.downlink.limiter import LNS_JITTER_MARGIN_SECS, LNS_WINDOW_SECS, RateLimiter, RateSettings


class VirtualTime:
    """A clock that only moves when the limiter sleeps; ``lateness_secs`` plays an event loop waking up late."""

    def __init__(self, lateness_secs: float = 0.0) -> None:
        self.now = 1000.0
        self.lateness_secs = lateness_secs
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, secs: float) -> None:
        self.sleeps.append(secs)
        self.now += secs + self.lateness_secs


async def grant_times(limiter: RateLimiter, time: VirtualTime, count: int) -> list[float]:
    granted = []
    for _ in range(count):
        await limiter.acquire()
        granted.append(time.now)
    return granted


def max_in_one_second(times: list[float], window_secs: float = 1.0) -> int:
    """Most grants inside any half-open window [t, t + window_secs), up to float rounding of the clock's sums."""
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window_secs - 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.parametrize("lateness_secs", [0.0, 0.0004, 0.003])
async def test_no_one_second_window_holds_more_than_the_rate(lateness_secs: float) -> None:
    time = VirtualTime(lateness_secs)
    limiter = RateLimiter(RateSettings(rate_per_sec=100), clock=time.clock, sleep=time.sleep)
    times = await grant_times(limiter, time, 500)
    assert max_in_one_second(times, LNS_WINDOW_SECS) <= 100
    # Each request may reach the network server up to the margin later than the next: still no second above 100.
    arrivals = sorted(moment + (LNS_JITTER_MARGIN_SECS if index % 2 else 0.0) for index, moment in enumerate(times))
    assert max_in_one_second(arrivals) <= 100


async def test_late_timers_do_not_cost_rate() -> None:
    time = VirtualTime(lateness_secs=0.0004)  # a typical event-loop wake-up delay
    limiter = RateLimiter(RateSettings(rate_per_sec=100), clock=time.clock, sleep=time.sleep)
    times = await grant_times(limiter, time, 501)
    achieved_per_sec = 500 / (times[-1] - times[0])
    assert achieved_per_sec > 99.0 / LNS_WINDOW_SECS


async def test_a_burst_is_limited_to_the_bucket() -> None:
    time = VirtualTime()
    limiter = RateLimiter(RateSettings(rate_per_sec=100, burst=5), clock=time.clock, sleep=time.sleep)
    times = await grant_times(limiter, time, 20)
    assert times.count(times[0]) == 5
    assert times[-1] - times[0] == pytest.approx(15 / (100 / LNS_WINDOW_SECS), abs=0.002)


def test_the_default_burst_is_a_twentieth_of_the_rate_and_at_least_one() -> None:
    assert RateSettings(100).bucket_size() == 5
    assert RateSettings(3).bucket_size() == 1


def test_a_rate_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(RateSettings(0))


async def test_one_per_second_grants_one_per_limit_window() -> None:
    time = VirtualTime()
    limiter = RateLimiter(RateSettings(rate_per_sec=1), clock=time.clock, sleep=time.sleep)
    times = await grant_times(limiter, time, 5)
    expected = [index * LNS_WINDOW_SECS for index in range(5)]
    assert [moment - times[0] for moment in times] == pytest.approx(expected, abs=1e-6)


async def test_never_sleeps_less_than_a_millisecond() -> None:
    time = VirtualTime()
    limiter = RateLimiter(RateSettings(rate_per_sec=1), clock=time.clock, sleep=time.sleep)
    await limiter.acquire()
    time.now += LNS_WINDOW_SECS - 1e-6  # the next grant is a microsecond away
    await limiter.acquire()
    assert time.sleeps == [0.001]


class SteppedTime:
    """A clock the test moves; sleepers wake, in the order they fell asleep, only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, secs: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + secs, woken))
        await woken

    def wake_next(self) -> None:
        """Move the clock to the earliest sleeper's wake-up time (if later) and wake every sleeper due by then."""
        self.now = max(self.now, min(at for at, _ in self._sleepers))
        due = [woken for at, woken in self._sleepers if at <= self.now]
        self._sleepers = [(at, woken) for at, woken in self._sleepers if at > self.now]
        for woken in due:
            woken.set_result(None)


async def run_loop(turns: int = 10) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


async def test_a_request_arriving_when_a_grant_frees_up_queues_behind_the_waiting_ones() -> None:
    time = SteppedTime()
    limiter = RateLimiter(RateSettings(rate_per_sec=1), clock=time.clock, sleep=time.sleep)
    order: list[int] = []

    async def request(number: int) -> None:
        await limiter.acquire()
        order.append(number)

    async with asyncio.timeout(5), asyncio.TaskGroup() as tasks:
        for number in range(3):
            tasks.create_task(request(number))
        await run_loop()
        assert order == [0]
        time.now = LNS_WINDOW_SECS  # a grant is free, but the waiting requests have not woken up yet
        tasks.create_task(request(3))
        await run_loop()
        for _ in range(3):
            time.wake_next()
            await run_loop()

    assert order == [0, 1, 2, 3]
