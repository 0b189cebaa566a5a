"""One CONNECT per second per client ID from the process: a replaced connection's new clients wait their turn."""

from __future__ import annotations

import pytest

from bridge_container.mqtt.connects import CONNECT_INTERVAL_SECS, ConnectPacer
from bridge_domain.quotas import CONNECTS_PER_SEC_PER_CLIENT_ID


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, secs: float) -> None:
        self.slept.append(secs)
        self.now += secs


def test_the_interval_is_longer_than_aws_allows_between_connects() -> None:
    assert CONNECT_INTERVAL_SECS > 1.0 / CONNECTS_PER_SEC_PER_CLIENT_ID


async def test_a_new_client_id_connects_at_once() -> None:
    clock = Clock()
    pacer = ConnectPacer(clock=clock, sleep=clock.sleep)

    await pacer.before_connect("bridge-task-0")

    assert clock.slept == []


async def test_a_client_id_that_stopped_a_moment_ago_waits_out_the_interval() -> None:
    clock = Clock()
    pacer = ConnectPacer(clock=clock, sleep=clock.sleep)
    await pacer.before_connect("bridge-task-0")
    clock.now += 0.3
    pacer.record("bridge-task-0")  # stopped 0.3 s after it connected
    clock.now += 0.2

    await pacer.before_connect("bridge-task-0")

    assert clock.slept == [pytest.approx(CONNECT_INTERVAL_SECS - 0.2)]


async def test_other_client_ids_do_not_wait_for_each_other() -> None:
    clock = Clock()
    pacer = ConnectPacer(clock=clock, sleep=clock.sleep)
    for slot in range(10):
        await pacer.before_connect(f"bridge-task-{slot}")

    assert clock.slept == []
    assert pacer.wait_secs("bridge-task-3") == pytest.approx(CONNECT_INTERVAL_SECS)


def test_client_ids_past_the_interval_are_forgotten() -> None:
    clock = Clock()
    pacer = ConnectPacer(clock=clock, sleep=clock.sleep)
    pacer.record("old")
    clock.now += CONNECT_INTERVAL_SECS + 0.01
    pacer.record("new")

    assert pacer.wait_secs("old") == 0.0
    assert len(pacer) == 1
