"""Delivery through the stand-in and mosquitto: user properties, QoS 0 at risk on a crash, QoS 1 at least once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bridge_container.metrics import UplinkMetrics, new_registry
from bridge_container.mqtt.crt import CrtClientFactory
from bridge_container.mqtt.port import ReconnectSettings, UserProperty
from bridge_container.states import ConnectionState
from bridge_container.uplink.pool import MESSAGE_ID_PROPERTY, MqttPool, PoolSettings
from bridge_domain.quotas import MAX_UNACKED_QOS1_PUBLISHES_PER_CONNECTION
from devtools.broker import LocalBroker
from devtools.pki import DevPki
from tests.integration.uplink.conftest import Received, connection_for, wait_until
from tests.metrics import sample_value

pytestmark = pytest.mark.integration

FAST_RECONNECT = ReconnectSettings(min_delay_secs=1.0, jitter_secs=0.0, max_delay_secs=2.0)
LABELS = {"connection": "default"}


def make_pool(factory: CrtClientFactory, config: Any, registry: CollectorRegistry) -> MqttPool:
    return MqttPool("default", PoolSettings.from_configuration(config), factory, UplinkMetrics(registry))


def total(registry: CollectorRegistry, name: str) -> float:
    """A counter of the connection, summed over its other labels (reasons)."""
    return sample_value(registry, name, LABELS)


def properties_of(index: int) -> tuple[UserProperty, ...]:
    return (
        UserProperty("DevEUI", f"{index:016X}"),
        UserProperty("LnsKind", "chirpstack"),
        UserProperty("EventType", "uplink"),
        UserProperty("FPort", "10"),
    )


@pytest.mark.parametrize("qos", [0, 1], ids=["qos0", "qos1"])
@pytest.mark.parametrize("native", [True, False], ids=["native-publish", "public-api-publish"])
async def test_user_properties_reach_a_subscriber(
    broker: LocalBroker, pki: DevPki, subscribe: Callable[..., Any], native: bool, qos: int
) -> None:
    config = connection_for(broker, pki.client("bridge"), uplinkQos=qos).configuration
    subscriber = await subscribe(broker, f"props{qos}{native:d}/+/uplink")
    factory = CrtClientFactory(config, f"props{qos}{native:d}", use_native_publish=native)
    async with make_pool(factory, config, new_registry()) as pool:
        await wait_until(lambda: pool.state is ConnectionState.OPENED)
        for index in range(20):
            assert pool.submit(f"props{qos}{native:d}/{index:04d}/uplink", b"{}", properties_of(index))
        received = await subscriber.wait_for(20)
        assert await pool.drain(5.0) == 0
    assert len(received) == 20
    for message in received:
        index = int(message.topic.split("/")[1])
        expected = {prop.name: prop.value for prop in properties_of(index)}
        assert {name: value for name, value in message.properties.items() if name != MESSAGE_ID_PROPERTY} == expected
    assert len({message.properties[MESSAGE_ID_PROPERTY] for message in received}) == 20


async def test_qos0_uplinks_written_just_before_a_broker_crash_are_counted_at_risk_not_published(
    private_broker: LocalBroker, pki: DevPki, subscribe: Callable[..., Any]
) -> None:
    registry = new_registry()
    count = 600
    config = connection_for(private_broker, pki.client("bridge"), poolSize=2, uplinkRatePerSec=200).configuration
    subscriber = await subscribe(private_broker, "crash0/+/uplink")
    factory = CrtClientFactory(config, "crash0", reconnect=FAST_RECONNECT)
    async with make_pool(factory, config, registry) as pool:
        await wait_until(lambda: pool.opened_clients == 2)
        for index in range(count):  # paced at the rate: 3 s of uplinks
            assert pool.submit(f"crash0/{index:04d}/uplink", b"{}")
        await asyncio.sleep(1.5)
        private_broker.kill()
        await wait_until(lambda: pool.opened_clients == 0)
        received = subscriber.snapshot()
        published_at_the_crash = total(registry, "bridge_uplinks_published_total")
    written = total(registry, "bridge_uplinks_written_total")
    at_risk = total(registry, "bridge_uplinks_at_risk_total")
    published = total(registry, "bridge_uplinks_published_total")
    dropped = total(registry, "bridge_uplinks_dropped_total")
    # Whatever was counted published reached the subscriber; what vanished was counted at risk.
    assert published == published_at_the_crash <= len(received)
    assert written - len(received) <= at_risk
    assert 0 < at_risk <= 200 * 1.1  # about the last second of writes at 200/s
    assert published + at_risk + dropped == count  # the rest was buffered, dropped at stop


async def test_qos1_uplinks_reach_the_broker_at_least_once_across_a_broker_crash(
    private_broker: LocalBroker, pki: DevPki, subscribe: Callable[..., Any]
) -> None:
    registry = new_registry()
    count = 400
    config = connection_for(
        private_broker, pki.client("bridge"), poolSize=2, uplinkRatePerSec=200, uplinkQos=1
    ).configuration
    before = await subscribe(private_broker, "crash1/+/uplink")
    factory = CrtClientFactory(config, "crash1", reconnect=FAST_RECONNECT)
    async with make_pool(factory, config, registry) as pool:
        await wait_until(lambda: pool.opened_clients == 2)
        for index in range(count):
            assert pool.submit(f"crash1/{index:04d}/uplink", b"{}", properties_of(index))
        await asyncio.sleep(1.0)
        # PUBACKs stop: each client publishes until it has AWS's 100 unacknowledged (the stand-in counts a 101st).
        private_broker.pause()
        await asyncio.sleep(1.5)
        private_broker.kill()
        await wait_until(lambda: pool.opened_clients == 0)
        await asyncio.sleep(0.3)
        private_broker.start()
        after = await subscribe(private_broker, "crash1/+/uplink")  # before the clients' next attempt, 1 s on
        await wait_until(lambda: total(registry, "bridge_uplinks_published_total") == count, timeout_secs=20.0)
        received: list[Received] = [*before.snapshot(), *(await after.wait_for(1))]
    topics = {message.topic for message in received}
    assert topics == {f"crash1/{index:04d}/uplink" for index in range(count)}
    # A copy published again carries the MessageId of the first: consumers can drop it.
    ids: dict[str, set[str]] = {}
    for message in received:
        ids.setdefault(message.topic, set()).add(message.properties[MESSAGE_ID_PROPERTY])
    assert all(len(found) == 1 for found in ids.values())
    assert total(registry, "bridge_uplinks_dropped_total") == 0
    # What the frozen broker never acknowledged was published again: 100 per client, the cap.
    assert total(registry, "bridge_uplinks_republished_total") == 2 * MAX_UNACKED_QOS1_PUBLISHES_PER_CONNECTION
    assert total(registry, "bridge_uplinks_written_total") == 0


async def test_uplinks_older_than_their_time_validity_after_an_outage_are_dropped_not_published_late(
    private_broker: LocalBroker, pki: DevPki, subscribe: Callable[..., Any]
) -> None:
    registry = new_registry()
    config = connection_for(private_broker, pki.client("bridge"), poolSize=1, uplinkTimeValidity=1).configuration
    factory = CrtClientFactory(config, "stale", reconnect=FAST_RECONNECT)
    async with make_pool(factory, config, registry) as pool:
        await wait_until(lambda: pool.opened_clients == 1)
        private_broker.kill()
        await wait_until(lambda: pool.opened_clients == 0)
        for index in range(20):  # accepted during the outage
            assert pool.submit(f"stale/{index:04d}/uplink", b"{}")
        await asyncio.sleep(1.5)  # older than uplinkTimeValidity by the time the broker is back
        private_broker.start()
        subscriber = await subscribe(private_broker, "stale/+/uplink")
        await wait_until(lambda: pool.opened_clients == 1)
        assert pool.submit("stale/fresh/uplink", b"{}")
        await subscriber.wait_for(1)
        assert await pool.drain(5.0) == 0
        await asyncio.sleep(0.5)  # anything published late would arrive meanwhile
        received = subscriber.snapshot()
    assert [message.topic for message in received] == ["stale/fresh/uplink"]
    assert sample_value(registry, "bridge_uplinks_dropped_total", {**LABELS, "reason": "stale"}) == 20
