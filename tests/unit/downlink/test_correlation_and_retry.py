"""ThingPark correlation IDs and the retry backoff."""

from __future__ import annotations

import random

import pytest

from bridge_container.downlink.correlation import CorrelationIds
from bridge_container.downlink.sender import RetryPolicy


def test_a_16_hex_digit_correlation_id_is_sent_to_thingpark_as_it_is() -> None:
    ids = CorrelationIds()
    assert ids.assign("4434704901c7450b") == "4434704901c7450b"


def test_other_correlation_ids_get_a_thingpark_id_that_resolves_back() -> None:
    ids = CorrelationIds()
    thingpark_id = ids.assign("order-17")
    assert len(thingpark_id) == 16
    int(thingpark_id, 16)
    assert ids.resolve(thingpark_id) == "order-17"
    assert ids.resolve(thingpark_id.lower()) == "order-17"


def test_a_downlink_without_correlation_id_resolves_to_none() -> None:
    ids = CorrelationIds()
    assert ids.resolve(ids.assign(None)) is None


def test_an_unknown_thingpark_id_resolves_to_itself() -> None:
    assert CorrelationIds().resolve("0011223344556677") == "0011223344556677"


def test_only_the_newest_ids_are_remembered() -> None:
    ids = CorrelationIds(capacity=2)
    first = ids.assign("a")
    ids.assign("b")
    ids.assign("c")
    assert ids.resolve(first) == first


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 8])
def test_backoff_is_jittered_between_half_and_all_of_the_capped_exponential(attempt: int) -> None:
    policy = RetryPolicy(max_attempts=9, base_delay_secs=0.1, max_delay_secs=0.5)
    ceiling = min(0.5, 0.1 * 2 ** (attempt - 1))
    delays = [policy.delay_secs(attempt, random.Random(seed)) for seed in range(50)]
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 1
