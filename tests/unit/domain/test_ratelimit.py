"""The token bucket shared by every rate limit, driven by an explicit clock."""

from __future__ import annotations

import pytest

from bridge_domain.ratelimit import TokenBucket


def grants_in(bucket: TokenBucket, start: float, end: float) -> list[float]:
    """Acquire as fast as allowed between ``start`` and ``end``; return the grant times."""
    now, grants = start, []
    while now < end:
        wait = bucket.try_acquire(now)
        if wait == 0:
            grants.append(now)
        else:
            now += wait
    return grants


@pytest.mark.parametrize("rate", [1, 15, 100, 1000])
def test_no_one_second_window_exceeds_the_rate_with_burst_one(rate: int) -> None:
    grants = grants_in(TokenBucket(rate, 1), 0.0, 5.0)
    assert len(grants) == pytest.approx(5 * rate, abs=1)
    windows = [sum(1 for g in grants if start <= g < start + 1.0) for start in [i / 10 for i in range(40)]]
    assert max(windows) <= rate


def test_burst_is_available_at_once_then_refills() -> None:
    bucket = TokenBucket(10, 5)
    assert [bucket.try_acquire(0.0) for _ in range(5)] == [0.0] * 5
    assert bucket.try_acquire(0.0) == pytest.approx(0.1)
    assert bucket.available(1.0) == pytest.approx(5)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0.5)])
def test_invalid_settings_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="rate_per_sec"):
        TokenBucket(rate, burst)
