"""The pool and the awscrt adapter against real mosquitto with client certificates."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from bridge_container.metrics import UplinkMetrics, new_registry
from bridge_container.mqtt.crt import CrtClientFactory, CrtMqttClient
from bridge_container.mqtt.port import ReconnectSettings
from bridge_container.states import ConnectionState
from bridge_container.uplink.pool import MqttPool, PoolSettings
from devtools.broker import LocalBroker
from devtools.pki import DevPki
from devtools.ports import free_port
from tests.integration.uplink.conftest import connection_for, max_in_window, wait_until
from tests.metrics import sample_value

pytestmark = pytest.mark.integration

FAST_RECONNECT = ReconnectSettings(min_delay_secs=1.0, jitter_secs=0.0, max_delay_secs=2.0)


def make_pool(factory: CrtClientFactory, config: Any, registry: Any = None) -> MqttPool:
    settings = PoolSettings.from_configuration(config)
    return MqttPool("default", settings, factory, UplinkMetrics(registry or new_registry()))


@pytest.mark.parametrize("native", [True, False], ids=["native-publish", "public-api-publish"])
async def test_uplinks_reach_a_subscriber_over_mutual_tls(
    broker: LocalBroker, pki: DevPki, subscribe: Callable[..., Any], native: bool
) -> None:
    config = connection_for(broker, pki.client("bridge")).configuration
    subscriber = await subscribe(broker, "pool/+/uplink")
    factory = CrtClientFactory(config, f"native{native}", use_native_publish=native)
    async with make_pool(factory, config) as pool:
        await wait_until(lambda: pool.state is ConnectionState.OPENED)
        # The fast path is chosen when a client starts; the public API is the fallback the guard falls back to.
        assert all(client.uses_native_publish is native for client in pool._clients)  # type: ignore[attr-defined]
        for index in range(50):
            assert pool.submit(f"pool/{index:04d}/uplink", b'{"n": %d}' % index)
        received = await subscriber.wait_for(50)
        assert await pool.drain(5.0) == 0
    assert sorted(message.topic for message in received) == [f"pool/{index:04d}/uplink" for index in range(50)]
    assert {message.payload for message in received} == {b'{"n": %d}' % index for index in range(50)}


async def test_rate_limits_hold_at_the_subscriber(
    broker: LocalBroker, pki: DevPki, subscribe: Callable[..., Any]
) -> None:
    config = connection_for(
        broker, pki.client("bridge"), poolSize=2, uplinkRatePerSec=30, perClientRatePerSec=20
    ).configuration
    subscriber = await subscribe(broker, "rate/+/uplink")
    async with make_pool(CrtClientFactory(config, "rate"), config) as pool:
        await wait_until(lambda: pool.opened_clients == 2)
        for index in range(75):
            assert pool.submit(f"rate/{index:04d}/uplink", b"{}")
        received = await subscriber.wait_for(75, timeout_secs=10.0)
    times = [message.at for message in received]
    assert len(times) == 75
    # The limits hold over a second plus the jitter margin, so every rolling second at the subscriber stays within.
    assert max_in_window(times, 1.0) <= 30
    assert times[-1] - times[0] >= 75 / 30 - 1.1  # the buffer was drained at the rate, not at once


async def test_uplinks_at_the_per_client_limit_all_reach_a_subscriber(
    broker: LocalBroker, pki: DevPki, subscribe: Callable[..., Any]
) -> None:
    count = 600  # 3 s at the limit of both clients
    config = connection_for(broker, pki.client("bridge"), poolSize=2, uplinkRatePerSec=200).configuration
    subscriber = await subscribe(broker, "limit/+/uplink")
    async with make_pool(CrtClientFactory(config, "limit"), config) as pool:
        await wait_until(lambda: pool.opened_clients == 2)
        for index in range(count):
            assert pool.submit(f"limit/{index:04d}/uplink", b"{}")
        received = await subscriber.wait_for(count, timeout_secs=10.0)
    assert len(received) == count
    stand_in = broker.stand_in
    assert stand_in is not None
    busiest = {entry["client_id"]: entry["max_1s_window"] for entry in stand_in.windows().by_connection}
    ours = [window for client_id, window in busiest.items() if "limit" in client_id]
    assert len(ours) == 2
    assert max(ours) <= 100  # AWS IoT's publishes per connection, in every rolling second the stand-in counted


async def test_wrong_client_certificate_is_authentication_failed_logged_once(
    broker: LocalBroker, rogue_pki: DevPki, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = connection_for(broker, rogue_pki.client("intruder"), poolSize=1).configuration
    caplog.set_level(logging.WARNING, logger="bridge_container.mqtt.crt")
    failed_attempts: list[object] = []  # appended on CRT's threads
    report_failure = CrtMqttClient._on_connection_failure

    def counting(client: CrtMqttClient, data: Any) -> None:
        failed_attempts.append(data)
        report_failure(client, data)

    monkeypatch.setattr(CrtMqttClient, "_on_connection_failure", counting)
    async with make_pool(CrtClientFactory(config, "rogue", reconnect=FAST_RECONNECT), config) as pool:
        await wait_until(lambda: pool.state is ConnectionState.AUTHENTICATION_FAILED)
        assert pool.submit("rogue/0000000000000001/uplink", b"{}")
        await wait_until(lambda: len(failed_attempts) >= 3)  # two retries failed the same way after the first
        assert pool.state is ConnectionState.AUTHENTICATION_FAILED
        assert pool.depth == 1  # nothing is handed to a client that is not OPENED
    failures = [record for record in caplog.records if "AUTHENTICATION_FAILED" in record.getMessage()]
    assert len(failures) == 1
    assert "AWS_IO_TLS" in failures[0].getMessage()


async def test_closed_port_is_unreachable(pki: DevPki, broker: LocalBroker) -> None:
    config = connection_for(broker, pki.client("bridge"), poolSize=1).configuration
    unreachable = config.model_copy(update={"broker": config.broker.model_copy(update={"port": free_port()})})  # type: ignore[union-attr]
    async with make_pool(CrtClientFactory(unreachable, "closed", reconnect=FAST_RECONNECT), unreachable) as pool:
        await wait_until(lambda: pool.state is ConnectionState.UNREACHABLE)


async def test_websocket_connection_publishes(broker: LocalBroker, pki: DevPki, subscribe: Callable[..., Any]) -> None:
    config = connection_for(
        broker,
        pki.client("bridge"),
        protocol="WSS",
        poolSize=1,
        broker={
            "host": broker.host,
            "port": broker.ports.wss,
            "caCertificate": broker.pki.ca.cert_pem,
            "useSigv4": False,
        },
    ).configuration
    subscriber = await subscribe(broker, "wss/+/uplink")
    async with make_pool(CrtClientFactory(config, "wss"), config) as pool:
        await wait_until(lambda: pool.state is ConnectionState.OPENED)
        assert pool.submit("wss/0000000000000001/uplink", b"{}")
        received = await subscriber.wait_for(1)
    assert [message.topic for message in received] == ["wss/0000000000000001/uplink"]


async def test_broker_restart_mid_stream_is_survived_and_losses_are_counted(
    private_broker: LocalBroker, pki: DevPki, subscribe: Callable[..., Any]
) -> None:
    registry = new_registry()
    config = connection_for(private_broker, pki.client("bridge"), poolSize=2, uplinkRatePerSec=200).configuration
    factory = CrtClientFactory(config, "restart", reconnect=FAST_RECONNECT)
    async with make_pool(factory, config, registry) as pool:
        await wait_until(lambda: pool.opened_clients == 2)
        for index in range(100):
            pool.submit(f"restart/{index:04d}/uplink", b"{}")
        await asyncio.sleep(0.2)
        private_broker.kill()
        await wait_until(lambda: pool.state is not ConnectionState.OPENED)
        for index in range(100, 150):
            assert pool.submit(f"restart/{index:04d}/uplink", b"{}")
        private_broker.start()
        await wait_until(lambda: pool.opened_clients == 2)
        subscriber = await subscribe(private_broker, "restart/+/uplink")
        for index in range(150, 160):
            pool.submit(f"restart/{index:04d}/uplink", b"{}")
        assert await pool.drain(10.0) == 0
        received = await subscriber.wait_for(10)
    labels = {"connection": "default"}
    published = sample_value(registry, "bridge_uplinks_published_total", labels)
    dropped = sample_value(registry, "bridge_uplinks_dropped_total", labels)
    at_risk = sample_value(registry, "bridge_uplinks_at_risk_total", labels)
    assert published + dropped + at_risk == 160  # every accepted uplink is accounted for
    assert {f"restart/{index:04d}/uplink" for index in range(150, 160)} <= {message.topic for message in received}
