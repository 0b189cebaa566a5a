"""The pool's limiter: aggregate and per-client limits, no window above a limit, bytes, deliveries and reservations.

Every publish limit holds over ``LIMIT_WINDOW_SECS`` (a second plus the jitter margin), so that the broker, counting
what arrives in a rolling second, never sees more than the limit as long as jitter stays inside the margin.
"""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from bridge_container.uplink.limits import (
    AWS_IOT_BYTES_PER_SEC_PER_CONNECTION,
    MAX_PUBLISH_BYTES,
    RateLimits,
    UplinkLimiter,
    byte_limit,
    publish_limit,
)
from bridge_domain.budget import JITTER_MARGIN_SECS, LIMIT_WINDOW_SECS

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
    assert max_in_any_window([time for time, _ in grants], LIMIT_WINDOW_SECS) <= 500
    assert len(grants) >= 3 * 500 / LIMIT_WINDOW_SECS - 5


def test_per_client_limit_holds_in_every_window() -> None:
    limiter = UplinkLimiter(RateLimits(aggregate_per_sec=1000.0, per_client_per_sec=100.0), clients=4)
    grants = run(limiter, clients=4, seconds=3.0)
    per_slot: dict[int, list[float]] = defaultdict(list)
    for time, slot in grants:
        per_slot[slot].append(time)
    assert sorted(per_slot) == [0, 1, 2, 3]
    for times in per_slot.values():
        assert max_in_any_window(times, LIMIT_WINDOW_SECS) <= 100
        assert len(times) >= 3 * 100 / LIMIT_WINDOW_SECS - 3


def test_jitter_inside_the_margin_keeps_every_second_at_the_broker_within_the_limit() -> None:
    limiter = UplinkLimiter(RateLimits(aggregate_per_sec=None, per_client_per_sec=100.0), clients=1)
    sent = [time for time, _ in run(limiter, clients=1, seconds=5.0)]
    jitter = random.Random(7)
    # Each publish arrives late by up to the margin: the worst case packs two windows' edges together.
    arrivals = sorted(time + jitter.uniform(0.0, JITTER_MARGIN_SECS) for time in sent)
    assert max_in_any_window(arrivals, 1.0) <= 100
    # Without the margin the same jitter crosses the limit: the margin is what keeps it.
    at_limit = UplinkLimiter(RateLimits(aggregate_per_sec=None, per_client_per_sec=105.0), clients=1)
    sent_at_limit = [time for time, _ in run(at_limit, clients=1, seconds=5.0)]
    late_first = [time + (JITTER_MARGIN_SECS if index % 105 == 0 else 0.0) for index, time in enumerate(sent_at_limit)]
    assert max_in_any_window(sorted(late_first), 1.0) > 100


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


def test_a_per_client_limit_of_one_per_second_grants_one_per_limit_window() -> None:
    limiter = UplinkLimiter(RateLimits(aggregate_per_sec=1.0, per_client_per_sec=1.0), clients=1)
    grants = run(limiter, clients=1, seconds=3.0)
    expected = [0.0, LIMIT_WINDOW_SECS, 2 * LIMIT_WINDOW_SECS]
    assert [time for time, _ in grants] == pytest.approx(expected, abs=2 * STEP_SECS)


def test_deliveries_count_against_the_clients_publish_limit() -> None:
    limiter = UplinkLimiter(RateLimits(aggregate_per_sec=None, per_client_per_sec=100.0), clients=1)
    for index in range(60):
        limiter.record_inbound(0, index * 0.001)
    grants = [time for time, _ in run(limiter, clients=1, seconds=LIMIT_WINDOW_SECS * 0.99)]
    assert len(grants) == 40  # 60 deliveries and 40 publishes fill the connection's 100


def test_a_reserved_client_publishes_only_what_its_deliveries_leave() -> None:
    limiter = UplinkLimiter(RateLimits(aggregate_per_sec=None, per_client_per_sec=100.0), clients=2)
    limiter.reserve_inbound({1}, reserved_per_sec=50)
    grants = run(limiter, clients=2, seconds=3.0)
    per_slot: dict[int, list[float]] = defaultdict(list)
    for time, slot in grants:
        per_slot[slot].append(time)
    assert max_in_any_window(per_slot[1], LIMIT_WINDOW_SECS) <= 50
    assert len(per_slot[1]) >= 3 * 50 / LIMIT_WINDOW_SECS - 3
    assert max_in_any_window(per_slot[0], LIMIT_WINDOW_SECS) <= 100
    assert len(per_slot[0]) >= 3 * 100 / LIMIT_WINDOW_SECS - 3


def test_a_reservation_moves_with_the_subscription() -> None:
    limiter = UplinkLimiter(RateLimits(aggregate_per_sec=None, per_client_per_sec=100.0), clients=2)
    limiter.reserve_inbound({0}, reserved_per_sec=50)
    limiter.reserve_inbound({1}, reserved_per_sec=50)
    counts: dict[int, int] = defaultdict(int)
    for _, slot in run(limiter, clients=2, seconds=3.0):
        counts[slot] += 1
    assert counts[0] >= 3 * 100 / LIMIT_WINDOW_SECS - 3  # no longer capped
    assert counts[1] <= 50 * 3  # capped now


# --- the burst and wait of each limit, at the edges where their rules change --------------------------------------
@pytest.mark.parametrize(
    ("rate_per_sec", "limit", "window_secs", "burst"),
    [
        (0.5, 1, 1.0, 2.0),  # below one a second: the rate itself, one grant per window
        (1.0, 1, LIMIT_WINDOW_SECS, 2.0),
        (100.0, 100, LIMIT_WINDOW_SECS, 2.0),
        (200.0, 200, LIMIT_WINDOW_SECS, 2.0),  # 1 % of a second is 2 grants: the minimum still holds
        (1000.0, 1000, LIMIT_WINDOW_SECS, 10.0),  # 1 % of a second of grants
    ],
)
def test_a_publish_limit_holds_its_rate_over_the_window_with_a_burst_of_1_percent_or_2(
    rate_per_sec: float, limit: int, window_secs: float, burst: float
) -> None:
    rate = publish_limit(rate_per_sec)
    assert (rate.limit, rate.window_secs, rate.burst) == (limit, window_secs, burst)


@pytest.mark.parametrize(
    ("rate_per_sec", "wait_after_burst"),
    [(0.5, 1.0), (1.0, LIMIT_WINDOW_SECS), (100.0, LIMIT_WINDOW_SECS / 100), (1000.0, LIMIT_WINDOW_SECS / 1000)],
)
def test_after_its_burst_a_publish_limit_waits_one_step(rate_per_sec: float, wait_after_burst: float) -> None:
    """One pace step, or the window when it holds fewer grants than the burst (one a second below 1/s)."""
    rate = publish_limit(rate_per_sec)
    while rate.try_take(0.0) == 0.0:
        pass
    assert rate.wait(0.0) == pytest.approx(wait_after_burst, abs=1e-8)


@pytest.mark.parametrize(
    ("bytes_per_sec", "burst"),
    [(AWS_IOT_BYTES_PER_SEC_PER_CONNECTION, MAX_PUBLISH_BYTES), (100e6, 1e6), (1000.0, MAX_PUBLISH_BYTES)],
)
def test_a_byte_limit_holds_the_largest_publish_or_1_percent_of_a_second(bytes_per_sec: float, burst: float) -> None:
    bucket = byte_limit(bytes_per_sec)
    assert (bucket.rate_per_sec, bucket.available(0.0)) == (bytes_per_sec, burst)
    bucket.take(0.0, burst)
    assert bucket.wait(0.0, 1) == pytest.approx(1 / bytes_per_sec, abs=1e-8)


def test_a_control_grant_leaves_the_aggregate_limit_to_uplinks() -> None:
    limiter = UplinkLimiter(RateLimits(aggregate_per_sec=1.0, per_client_per_sec=100.0), clients=1)
    for _ in range(5):
        limiter.take(0, 0.0, 10, aggregate=False)
    assert limiter.aggregate_wait(0.0) == 0.0
    limiter.take(0, 0.0, 10)
    limiter.take(0, 0.0, 10)  # the burst of 2
    assert limiter.aggregate_wait(0.0) == pytest.approx(LIMIT_WINDOW_SECS)


def test_each_client_waits_for_the_longest_of_its_publish_byte_and_reservation_limits() -> None:
    limiter = UplinkLimiter(RateLimits(aggregate_per_sec=None, per_client_per_sec=100.0), clients=2)
    limiter.reserve_inbound({0}, reserved_per_sec=100)  # all of it reserved: still one publish a second
    for _ in range(2):
        limiter.take(0, 0.0, 10)
        limiter.take(1, 0.0, MAX_PUBLISH_BYTES // 2)
    assert limiter.client_wait(0, 0.0, 10) == pytest.approx(LIMIT_WINDOW_SECS)  # the cap's window
    assert limiter.client_wait(1, 0.0, 10) == pytest.approx(LIMIT_WINDOW_SECS / 100)  # the publish pace
    assert limiter.client_wait(1, 0.0, MAX_PUBLISH_BYTES) == pytest.approx(
        (MAX_PUBLISH_BYTES - MAX_PUBLISH_BYTES % 2) / AWS_IOT_BYTES_PER_SEC_PER_CONNECTION, rel=1e-3
    )  # the bytes


def test_a_reservation_keeps_its_count_while_its_client_keeps_it_and_ends_at_zero() -> None:
    limiter = UplinkLimiter(RateLimits(aggregate_per_sec=None, per_client_per_sec=100.0), clients=2)
    limiter.reserve_inbound({0}, reserved_per_sec=99)
    limiter.take(0, 0.0, 10)  # the cap of 1 a second is used
    limiter.reserve_inbound({0, 1}, reserved_per_sec=99)
    assert limiter.client_wait(0, 0.0, 10) == pytest.approx(LIMIT_WINDOW_SECS)
    assert limiter.client_wait(1, 0.0, 10) == 0.0
    limiter.reserve_inbound({0, 1}, reserved_per_sec=0)
    assert limiter.client_wait(0, 0.0, 10) == 0.0  # no reservation, no cap: the publish limit has room


def test_without_a_per_client_limit_nothing_is_reserved() -> None:
    limiter = UplinkLimiter(RateLimits(aggregate_per_sec=100.0, per_client_per_sec=None), clients=1)
    limiter.reserve_inbound({0}, reserved_per_sec=50)
    limiter.record_inbound(0, 0.0)
    for _ in range(50):
        limiter.take(0, 0.0, 10, aggregate=False)
    assert limiter.client_wait(0, 0.0, 10) == 0.0


def test_a_reservation_of_one_delivery_a_second_caps_the_client_at_the_rest() -> None:
    limiter = UplinkLimiter(RateLimits(aggregate_per_sec=None, per_client_per_sec=100.0), clients=1)
    limiter.reserve_inbound({0}, reserved_per_sec=1)
    limiter.take(0, 0.0, 10)
    limiter.take(0, 0.0, 10)  # both bursts of 2 used: the slower pace decides
    assert limiter.client_wait(0, 0.0, 10) == pytest.approx(LIMIT_WINDOW_SECS / 99, abs=1e-8)
