"""The uplink limiter: aggregate and per-client limits, no 1-second window above a limit, bytes per second."""

from __future__ import annotations

from collections import defaultdict

import pytest

from bridge_container.uplink.limits import AWS_IOT_BYTES_PER_SEC_PER_CONNECTION, RateLimits, UplinkLimiter

STEP_SECS = 0.0002


def run(limiter: UplinkLimiter, clients: int, seconds: float, size: int = 100) -> list[tuple[float, int]]:
    """Ask for grants as often as the simulated clock allows, round-robin over clients; return (time, slot)."""
    grants: list[tuple[float, int]] = []
    now = 0.0
    slot = 0
    while now < seconds:
        if limiter.aggregate_wait(now) == 0.0:
            for step in range(clients):
                candidate = (slot + step) % clients
                if limiter.client_wait(candidate, now, size) == 0.0:
                    limiter.take(candidate, now, size)
                    grants.append((now, candidate))
                    slot = candidate + 1
                    break
        now += STEP_SECS
    return grants


def max_in_any_window(times: list[float], window_secs: float = 1.0) -> int:
    best = 0
    start = 0
    for end, time in enumerate(times):
        while time - times[start] >= window_secs:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_aggregate_limit_holds_in_every_window_and_is_reached() -> None:
    limiter = UplinkLimiter(RateLimits(aggregate_per_sec=500.0, per_client_per_sec=100.0), clients=10)
    grants = run(limiter, clients=10, seconds=3.0)
    assert max_in_any_window([time for time, _ in grants]) <= 500
    assert len(grants) >= 3 * 500 - 5


def test_per_client_limit_holds_in_every_window() -> None:
    limiter = UplinkLimiter(RateLimits(aggregate_per_sec=1000.0, per_client_per_sec=100.0), clients=4)
    grants = run(limiter, clients=4, seconds=3.0)
    per_slot: dict[int, list[float]] = defaultdict(list)
    for time, slot in grants:
        per_slot[slot].append(time)
    assert sorted(per_slot) == [0, 1, 2, 3]
    for times in per_slot.values():
        assert max_in_any_window(times) <= 100
        assert len(times) >= 3 * 100 - 3


def test_bytes_per_client_are_limited_like_aws_iot() -> None:
    limiter = UplinkLimiter(RateLimits(aggregate_per_sec=None, per_client_per_sec=None), clients=1)
    size = 64 * 1024
    grants = run(limiter, clients=1, seconds=4.0, size=size)
    sent_bytes = len(grants) * size
    assert sent_bytes <= AWS_IOT_BYTES_PER_SEC_PER_CONNECTION * 4 + 128 * 1024 + size


def test_lifted_limits_grant_everything() -> None:
    limiter = UplinkLimiter(RateLimits.lifted(), clients=2)
    assert not RateLimits.lifted().any
    assert all(limiter.client_wait(0, 0.0, 10) == 0.0 and limiter.aggregate_wait(0.0) == 0.0 for _ in range(1000))


def test_a_per_client_limit_of_one_per_second_grants_one_a_second() -> None:
    limiter = UplinkLimiter(RateLimits(aggregate_per_sec=1.0, per_client_per_sec=1.0), clients=1)
    grants = run(limiter, clients=1, seconds=3.0)
    assert [time for time, _ in grants] == pytest.approx([0.0, 1.0, 2.0], abs=2 * STEP_SECS)
