"""What the pool counts as published at QoS 0 and 1, what it publishes again, and what it never publishes late."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from bridge_container.metrics import UplinkMetrics, new_registry
from bridge_container.mqtt.port import UserProperty
from bridge_container.states import ConnectionState
from bridge_container.uplink import pool as pool_module
from bridge_container.uplink.limits import RateLimits
from bridge_container.uplink.pool import MESSAGE_ID_PROPERTY, MqttPool, PoolSettings
from bridge_domain.quotas import MAX_UNACKED_QOS1_PUBLISHES_PER_CONNECTION
from tests.metrics import sample_value
from tests.unit.bridge.fakes import FakeFactory

CONNECTION = "default"
LOST_WITH_CONNECTION = "AWS_ERROR_MQTT5_OPERATION_FAILED_DUE_TO_OFFLINE_QUEUE_POLICY"
LABELS = {"connection": CONNECTION}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def settle(condition: Callable[[], bool], timeout_secs: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_secs
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


def make_pool(
    factory: FakeFactory, clock: FakeClock, *, size: int = 1, qos: int = 0, max_age_secs: float | None = None
) -> tuple[MqttPool, CollectorRegistry]:
    registry = new_registry()
    settings = PoolSettings(size, 1000, RateLimits.lifted(), qos=qos, max_age_secs=max_age_secs)
    return MqttPool(CONNECTION, settings, factory, UplinkMetrics(registry), clock=clock), registry


def count(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return sample_value(registry, name, {**LABELS, **labels}) or 0.0


@pytest.fixture
def factory() -> FakeFactory:
    return FakeFactory()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- QoS 0 ---------------------------------------------------------------------------------------------------------
async def test_a_qos0_write_counts_published_only_once_its_connection_stayed_up_for_the_settle_window(
    factory: FakeFactory, clock: FakeClock
) -> None:
    pool, registry = make_pool(factory, clock)
    async with pool:
        for index in range(3):
            assert pool.submit(f"t/{index}", b"x")
        await settle(lambda: count(registry, "bridge_uplinks_written_total") == 3)
        assert count(registry, "bridge_uplinks_published_total") == 0
        clock.now += pool_module.QOS0_SETTLE_SECS
        await settle(lambda: count(registry, "bridge_uplinks_published_total") == 3)


async def test_qos0_writes_of_the_last_moments_before_a_drop_are_counted_at_risk_by_reason(
    factory: FakeFactory, clock: FakeClock
) -> None:
    pool, registry = make_pool(factory, clock, size=2)
    async with pool:
        for index in range(4):  # two on each client
            assert pool.submit(f"t/{index}", b"x")
        await settle(lambda: count(registry, "bridge_uplinks_written_total") == 4)
        factory.clients[0].drop("AWS_IO_SOCKET_CLOSED")
        assert count(registry, "bridge_uplinks_at_risk_total", reason="AWS_IO_SOCKET_CLOSED") == 2
        clock.now += pool_module.QOS0_SETTLE_SECS
        await settle(lambda: count(registry, "bridge_uplinks_published_total") == 2)  # the other client's two
    # Stopping cleanly publishes nothing more and takes nothing back from the at-risk count.
    assert count(registry, "bridge_uplinks_published_total") == 2
    assert count(registry, "bridge_uplinks_at_risk_total", reason="AWS_IO_SOCKET_CLOSED") == 2


async def test_qos0_writes_settling_when_the_pool_stops_are_published(factory: FakeFactory, clock: FakeClock) -> None:
    pool, registry = make_pool(factory, clock)
    async with pool:
        assert pool.submit("t/1", b"x")
        await settle(lambda: count(registry, "bridge_uplinks_written_total") == 1)
    # A clean stop sends DISCONNECT after the write: the broker read it first.
    assert count(registry, "bridge_uplinks_published_total") == 1
    assert count(registry, "bridge_uplinks_at_risk_total", reason="UNKNOWN") == 0


# --- QoS 1 ---------------------------------------------------------------------------------------------------------
async def test_a_qos1_uplink_counts_published_on_its_puback_only(factory: FakeFactory, clock: FakeClock) -> None:
    pool, registry = make_pool(factory, clock, qos=1)
    async with pool:
        factory.clients[0].hold_completions = True
        assert pool.submit("t/1", b"x")
        await asyncio.sleep(3 * pool_module.REAP_INTERVAL_SECS)
        assert factory.clients[0].qos == [1]
        assert count(registry, "bridge_uplinks_published_total") == 0
        factory.clients[0].release()
        await settle(lambda: count(registry, "bridge_uplinks_published_total") == 1)
    assert count(registry, "bridge_uplinks_written_total") == 0


async def test_a_qos1_uplink_lost_before_its_puback_is_published_again_with_the_same_message_id(
    factory: FakeFactory, clock: FakeClock
) -> None:
    pool, registry = make_pool(factory, clock, qos=1)
    async with pool:
        client = factory.clients[0]
        client.hold_completions = True
        assert pool.submit("t/1", b"x", (UserProperty("DevEUI", "0000000000000001"),))
        await settle(lambda: len(client.published) == 1)
        client.release(LOST_WITH_CONNECTION)
        await settle(lambda: len(client.published) == 2)
        client.release()
        await settle(lambda: count(registry, "bridge_uplinks_published_total") == 1)
    first, second = client.properties
    assert first is not None
    assert first == second
    assert [prop.name for prop in first] == [MESSAGE_ID_PROPERTY, "DevEUI"]
    assert count(registry, "bridge_uplinks_republished_total") == 1
    assert count(registry, "bridge_uplinks_dropped_total", reason="publish_failed") == 0


async def test_a_puback_failure_is_counted_dropped_by_its_reason(factory: FakeFactory, clock: FakeClock) -> None:
    pool, registry = make_pool(factory, clock, qos=1)
    async with pool:
        client = factory.clients[0]
        client.hold_completions = True
        assert pool.submit("t/1", b"x")
        await settle(lambda: len(client.published) == 1)
        client.release("PUBACK_QUOTA_EXCEEDED")
        await settle(lambda: count(registry, "bridge_uplinks_dropped_total", reason="puback_quota_exceeded") == 1)
    assert len(client.published) == 1  # refused by the broker: not retried
    assert count(registry, "bridge_uplinks_published_total") == 0


async def test_a_client_has_at_most_awss_limit_of_unacknowledged_qos1_publishes(
    factory: FakeFactory, clock: FakeClock
) -> None:
    limit = MAX_UNACKED_QOS1_PUBLISHES_PER_CONNECTION
    pool, registry = make_pool(factory, clock, qos=1)
    async with pool:
        client = factory.clients[0]
        client.hold_completions = True
        for index in range(limit + 20):
            assert pool.submit(f"t/{index}", b"x")
        await asyncio.sleep(5 * pool_module.REAP_INTERVAL_SECS)
        assert (len(client.published), pool.depth) == (limit, 20)
        client.release()
        await settle(lambda: len(client.published) == limit + 20)
        client.release()
        await settle(lambda: count(registry, "bridge_uplinks_published_total") == limit + 20)


# --- user properties and stale uplinks -------------------------------------------------------------------------------
async def test_every_publish_carries_a_message_id_of_its_own_and_the_properties_it_was_accepted_with(
    factory: FakeFactory, clock: FakeClock
) -> None:
    pool, _ = make_pool(factory, clock)
    lns = UserProperty("LnsKind", "tts")
    sent = UserProperty("EventType", "downlink_sent")
    async with pool:
        assert pool.submit("t/1", b"x", (lns,))
        assert pool.submit_many([("t/2", b"y", (lns,)), ("t/3", b"z", ())], 2)
        await settle(lambda: len(factory.clients[0].published) == 3)
        await pool.publish_control("fb/1", b"{}", (sent,))
    client = factory.clients[0]
    assert [topic for topic, _ in client.published] == ["t/1", "t/2", "t/3", "fb/1"]
    properties = [props or () for props in client.properties]
    assert [props[0].name for props in properties] == [MESSAGE_ID_PROPERTY] * 4
    assert len({props[0].value for props in properties}) == 4
    assert [props[1:] for props in properties] == [(lns,), (lns,), (), (sent,)]


async def test_uplinks_older_than_their_time_validity_are_dropped_not_published_late(
    factory: FakeFactory, clock: FakeClock
) -> None:
    factory.start_states = {0: ConnectionState.OPENING}
    pool, registry = make_pool(factory, clock, max_age_secs=30.0)
    async with pool:
        assert pool.submit("t/old", b"x")
        clock.now += 20.0
        assert pool.submit("t/young", b"x")
        clock.now += 15.0  # the outage ends: t/old waited 35 s, t/young 15 s
        factory.clients[0].move_to(ConnectionState.OPENED)
        await settle(lambda: pool.depth == 0)
    assert factory.clients[0].published == [("t/young", b"x")]
    assert count(registry, "bridge_uplinks_dropped_total", reason="stale") == 1


# --- deliveryAck: published ------------------------------------------------------------------------------------------
async def test_a_waiting_request_learns_that_its_uplink_was_acknowledged_or_why_not(
    factory: FakeFactory, clock: FakeClock
) -> None:
    pool, _ = make_pool(factory, clock, qos=1)
    loop = asyncio.get_running_loop()
    acknowledged, refused, stopped = loop.create_future(), loop.create_future(), loop.create_future()
    async with pool:
        client = factory.clients[0]
        client.hold_completions = True
        assert pool.submit("t/1", b"x", (), acknowledged)
        await settle(lambda: len(client.published) == 1)
        assert not acknowledged.done()
        client.release()
        assert await asyncio.wait_for(acknowledged, 1.0) is None
        assert pool.submit("t/2", b"x", (), refused)
        await settle(lambda: len(client.published) == 2)
        client.release("PUBACK_NOT_AUTHORIZED")
        assert await asyncio.wait_for(refused, 1.0) == "puback_not_authorized"
        client.move_to(ConnectionState.OPENING)
        assert pool.submit("t/3", b"x", (), stopped)
    assert stopped.result() == "shutdown"


async def test_a_waiting_request_learns_that_its_uplink_went_stale(factory: FakeFactory, clock: FakeClock) -> None:
    factory.start_states = {0: ConnectionState.OPENING}
    pool, _ = make_pool(factory, clock, qos=1, max_age_secs=5.0)
    waiter = asyncio.get_running_loop().create_future()
    async with pool:
        assert pool.submit("t/1", b"x", (), waiter)
        clock.now += 6.0
        factory.clients[0].move_to(ConnectionState.OPENED)
        assert await asyncio.wait_for(waiter, 1.0) == "stale"
