"""The rate-limit arithmetic shared by every limit, driven by an explicit clock."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

import pytest

from bridge_domain.ratelimit import SlidingWindow, TokenBucket, WindowedRate


def grants_in(try_take: Callable[[float], float], start: float, end: float) -> list[float]:
    """Ask as fast as allowed between ``start`` and ``end``, sleeping exactly the waits; return the grant times."""
    now, grants = start, []
    while now < end:
        wait = try_take(now)
        if wait == 0:
            grants.append(now)
        else:
            now += wait
    return grants


def most_in_any_window(times: Sequence[float], window_secs: float = 1.0) -> int:
    """The most grants inside any half-open window ``[t, t + window_secs)`` (the worst one starts at a grant)."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + window_secs) - i for i, t in enumerate(ordered)), default=0)


# --- TokenBucket ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [1, 15, 100, 1000])
def test_no_one_second_window_exceeds_the_rate_with_burst_one(rate: int) -> None:
    grants = grants_in(TokenBucket(rate, 1).try_acquire, 0.0, 5.0)
    assert len(grants) == pytest.approx(5 * rate, abs=1)
    assert most_in_any_window(grants) <= rate


def test_burst_is_available_at_once_then_refills() -> None:
    bucket = TokenBucket(10, 5)
    assert [bucket.try_acquire(0.0) for _ in range(5)] == [0.0] * 5
    assert bucket.try_acquire(0.0) == pytest.approx(0.1)
    assert bucket.available(1.0) == pytest.approx(5)


def test_a_request_larger_than_the_burst_waits_for_a_full_bucket() -> None:
    bucket = TokenBucket(rate_per_sec=100, burst=10)
    bucket.take(0.0, 10)
    assert bucket.wait(0.0, 50) == pytest.approx(0.1)
    assert bucket.wait(0.1, 50) == 0.0


def test_try_acquire_takes_the_tokens_it_was_asked_for() -> None:
    bucket = TokenBucket(rate_per_sec=10, burst=5)
    assert bucket.try_acquire(0.0, 4) == 0.0
    assert bucket.available(0.0) == pytest.approx(1)
    assert bucket.try_acquire(0.0, 3) == pytest.approx(0.2)  # 2 missing at 10/s
    assert bucket.available(0.0) == pytest.approx(1)  # a refusal takes nothing


@pytest.mark.parametrize(("rate", "burst"), [(1e-9, 1), (1, 1)])
def test_the_smallest_bucket_settings_are_accepted(rate: float, burst: float) -> None:
    assert TokenBucket(rate, burst).available(0.0) == burst


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0.5), (1, 0.999)])
def test_invalid_bucket_settings_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match=r"^rate_per_sec must be > 0 and burst >= 1$"):
        TokenBucket(rate, burst)


# --- SlidingWindow -------------------------------------------------------------------------------------------------
def test_sliding_window_reports_the_wait_until_the_oldest_event_ages_out() -> None:
    window = SlidingWindow(limit=2)
    window.take(10.0)
    window.take(10.4)
    assert window.wait(10.5) == 0.5
    assert window.wait(11.0) == 0.0


def test_the_smallest_window_holds_one_event() -> None:
    window = SlidingWindow(limit=1, window_secs=1e-3)
    window.take(0.0)
    assert window.wait(0.0) == pytest.approx(1e-3)
    assert window.wait(1e-3) == 0.0


@pytest.mark.parametrize(("limit", "window_secs"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_invalid_window_settings_are_refused(limit: int, window_secs: float) -> None:
    with pytest.raises(ValueError, match=r"^limit must be >= 1 and window_secs > 0$"):
        SlidingWindow(limit, window_secs)


# --- WindowedRate --------------------------------------------------------------------------------------------------
def test_idle_spells_between_bursts_never_put_more_than_the_limit_in_a_rolling_second() -> None:
    # A bucket of 50 alone would let 150 grants into one second: a full bucket plus a second's refill.
    rate = WindowedRate(limit=100, burst=50)
    grants: list[float] = []
    now = 0.0
    for _ in range(6):
        burst_end = now + 0.6
        while now < burst_end:
            wait = rate.try_take(now)
            if wait == 0:
                grants.append(now)
            else:
                now += wait
        now += 0.45  # idle: the bucket refills
    assert most_in_any_window(grants) == 100


def test_continuous_demand_is_paced_at_the_limit() -> None:
    grants = grants_in(WindowedRate(limit=100, burst=5).try_take, 0.0, 10.0)
    assert len(grants) == pytest.approx(1000, abs=6)
    assert most_in_any_window(grants) <= 100


def test_without_a_pace_the_bucket_refills_at_the_limit_per_window() -> None:
    rate = WindowedRate(limit=100, window_secs=2.0)
    assert rate.rate_per_sec == 50.0
    rate.take(0.0)
    assert rate.wait(0.0) == pytest.approx(0.02)


def test_the_wait_is_the_window_wait_when_the_window_is_full() -> None:
    rate = WindowedRate(limit=2, pace_per_sec=10, burst=2)
    rate.take(0.0)
    rate.take(0.0)
    assert rate.wait(0.0) == 1.0
    assert rate.wait(0.25) == 0.75
    assert rate.wait(1.0) == 0.0


def test_the_wait_is_the_pace_when_the_bucket_is_empty() -> None:
    rate = WindowedRate.per_sec(10)
    rate.take(0.0)
    assert rate.wait(0.0) == pytest.approx(0.1, abs=1e-8)
    assert rate.wait(0.04) == pytest.approx(0.06, abs=1e-8)
    assert rate.wait(0.1) == 0.0


def test_wait_takes_nothing() -> None:
    rate = WindowedRate.per_sec(1)
    assert [rate.wait(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rate.try_take(0.0) == 0.0
    assert rate.try_take(0.0) == pytest.approx(1.0)


def test_one_per_second_grants_exactly_one_a_second() -> None:
    rate = WindowedRate.per_sec(1.0)
    assert rate.limit == 1
    grants = grants_in(rate.try_take, 0.0, 10.0)
    assert grants == pytest.approx([float(second) for second in range(10)], abs=1e-6)


def test_half_per_second_grants_one_every_two_seconds() -> None:
    rate = WindowedRate.per_sec(0.5)
    assert rate.limit == 1
    rate.take(0.0)
    assert rate.wait(0.0) == pytest.approx(2.0)
    grants = grants_in(rate.try_take, 0.0, 10.0)
    assert grants == pytest.approx([2.0, 4.0, 6.0, 8.0], abs=1e-6)


@pytest.mark.parametrize(("rate_per_sec", "expected_limit"), [(1, 1), (15, 15), (100, 100), (99.5, 99), (1e-3, 1)])
def test_per_sec_puts_the_whole_grants_of_a_second_in_the_window(rate_per_sec: float, expected_limit: int) -> None:
    assert WindowedRate.per_sec(rate_per_sec).limit == expected_limit


def test_a_burst_larger_than_the_limit_is_held_by_the_window() -> None:
    rate = WindowedRate.per_sec(1.0, burst=2.0)
    assert rate.try_take(0.0) == 0.0
    assert rate.try_take(0.0) == 1.0
    assert rate.try_take(1.0) == 0.0


def test_pacing_below_the_limit_leaves_headroom_in_every_window() -> None:
    grants = grants_in(WindowedRate(limit=100, pace_per_sec=95, burst=2).try_take, 0.0, 10.0)
    assert len(grants) == pytest.approx(950, abs=3)
    assert most_in_any_window(grants) <= 97


def test_a_longer_window_keeps_the_limit_for_windows_up_to_its_length() -> None:
    grants = grants_in(WindowedRate(limit=100, window_secs=1.05, burst=5).try_take, 0.0, 10.0)
    assert most_in_any_window(grants, window_secs=1.05) <= 100


@pytest.mark.parametrize("rate_per_sec", [0.0, -1.0])
def test_a_rate_of_zero_or_less_is_refused(rate_per_sec: float) -> None:
    with pytest.raises(ValueError, match="rate_per_sec"):
        WindowedRate.per_sec(rate_per_sec)


def test_counted_events_fill_the_window_without_slowing_the_pace() -> None:
    limit = WindowedRate(limit=10, window_secs=1.0, burst=10.0)
    for index in range(7):
        limit.count(index * 0.01)

    granted = sum(1 for _ in range(10) if limit.try_take(0.1) == 0.0)

    assert granted == 3  # the window holds 10: 7 counted, 3 granted; the full burst was still there
    assert limit.wait(0.1) == pytest.approx(0.9)  # until the first counted event leaves the window
