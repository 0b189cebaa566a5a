"""A pool's publish budget: subscribers, what each reserves for deliveries, and what is left for publishes."""

from __future__ import annotations

from typing import Any

import pytest

from bridge_domain.budget import INBOUND_SHARE_OF_CONNECTION, PoolBudget, plan_budget
from bridge_domain.loading import parse_connection
from bridge_domain.quotas import PUBLISHES_PER_SEC_PER_CONNECTION


def test_the_seed_pool_spreads_100_downlinks_over_two_subscribers_and_keeps_900_publishes() -> None:
    budget = plan_budget(pool_size=10, per_connection_per_sec=100, downlink_rate_per_sec=100)

    assert (budget.subscribers, budget.inbound_reserved_per_sec) == (2, 50)
    assert budget.outbound_per_subscriber_per_sec == 50
    assert budget.outbound_per_sec == 900
    assert budget.inbound_per_sec == 100
    assert budget.warnings() == []


def test_no_downlinks_reserve_nothing() -> None:
    budget = plan_budget(pool_size=10, per_connection_per_sec=100, downlink_rate_per_sec=None)

    assert (budget.subscribers, budget.inbound_reserved_per_sec, budget.outbound_per_sec) == (0, 0, 1000)


@pytest.mark.parametrize(
    ("downlinks", "subscribers", "reserved"),
    [(1, 1, 1), (50, 1, 50), (51, 2, 26), (99, 2, 50), (100, 2, 50)],
)
def test_subscribers_grow_with_the_downlink_rate_and_share_it(downlinks: int, subscribers: int, reserved: int) -> None:
    budget = plan_budget(pool_size=10, per_connection_per_sec=100, downlink_rate_per_sec=downlinks)

    assert (budget.subscribers, budget.inbound_reserved_per_sec) == (subscribers, reserved)
    assert budget.inbound_per_sec >= downlinks


@pytest.mark.parametrize(
    ("pool_size", "per_connection", "downlinks", "expected"),
    [
        (10, 100, None, PoolBudget(10, 100, 0, 0, 0)),
        (10, 100, 0, PoolBudget(10, 100, 0, 0, 0)),
        (10, 100, -1, PoolBudget(10, 100, 0, 0, 0)),
        (4, 1, 3, PoolBudget(4, 1, 1, 0, 3)),  # share 0: one subscriber, nothing to reserve (warned about)
        (4, 2, 3, PoolBudget(4, 2, 3, 1, 3)),  # share 1: the smallest that reserves
        (4, 3, 3, PoolBudget(4, 3, 3, 1, 3)),
        (1, 100, 1, PoolBudget(1, 100, 1, 1, 1)),
        (1, 1, 1, PoolBudget(1, 1, 1, 0, 1)),
    ],
)
def test_the_budget_at_each_edge_of_the_share(
    pool_size: int, per_connection: int, downlinks: int | None, expected: PoolBudget
) -> None:
    assert plan_budget(pool_size, per_connection, downlinks) == expected


@pytest.mark.parametrize(("pool_size", "per_connection"), [(0, 100), (1, 0), (-1, -1)])
def test_an_empty_pool_or_connection_is_refused(pool_size: int, per_connection: int) -> None:
    with pytest.raises(ValueError, match=r"^pool_size and per_connection_per_sec must be >= 1$"):
        plan_budget(pool_size, per_connection, 10)


def test_no_subscriber_gives_more_than_its_share_to_deliveries() -> None:
    for pool_size in range(1, 11):
        for per_connection in (1, 2, 3, 50, 99, PUBLISHES_PER_SEC_PER_CONNECTION):
            for downlinks in (1, 10, 50, 100):
                budget = plan_budget(pool_size, per_connection, downlinks)
                assert budget.inbound_reserved_per_sec <= per_connection * INBOUND_SHARE_OF_CONNECTION
                assert budget.outbound_per_subscriber_per_sec >= 1
                assert 1 <= budget.subscribers <= pool_size


def test_a_pool_too_small_for_its_downlink_rate_is_warned_about_with_the_figures() -> None:
    budget = plan_budget(pool_size=1, per_connection_per_sec=100, downlink_rate_per_sec=100)

    assert budget.inbound_per_sec == 50
    [warning] = budget.warnings()
    assert "downlinkRatePerSec" in warning
    assert "at most 50/s" in warning


def test_the_connection_model_reports_the_budget_and_its_warning(document: dict[str, Any]) -> None:
    document["configuration"].update(poolSize=1, uplinkRatePerSec=50, downlinkRatePerSec=100)
    configuration = parse_connection(document).configuration

    assert configuration.budget.subscribers == 1
    assert any("downlinkRatePerSec" in warning for warning in configuration.warnings())
    document["configuration"]["downlinkEnabled"] = False
    assert parse_connection(document).configuration.budget.subscribers == 0
