"""Downlinks survive broker restarts, bridge restarts and a shared subscription's member restarting: each one
published reaches the network server exactly once.

The application publishes at QoS 1 (a broker queues only QoS 1 messages for a disconnected session) with an MQTT 5
``messageId`` user property, through ``mosquitto_pub`` on the observer port: it is the customer's side, not a
client under test. The bridges are the real pool and downlink service on the enforcing stand-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from bridge_container.downlink.service import DownlinkService
from bridge_container.metrics import UplinkMetrics
from bridge_container.mqtt.crt import CrtClientFactory
from bridge_container.uplink.pool import MqttPool, PoolSettings
from bridge_domain.connection import ConnectionConfiguration
from devtools.broker import LocalBroker
from devtools.local_lns import Answer, LocalLns
from devtools.pki import CertPair, DevPki
from tests.integration.downlink.conftest import (
    FAST_SETTINGS,
    OPEN_TIMEOUT_SECS,
    Application,
    Bridge,
    configuration,
    unique_task_id,
    wait_until,
)

pytestmark = pytest.mark.integration

PLAIN_FILTER = "tpx/things/+/downlink"
# IoT Core refuses a second CONNECT of a client ID within a second; a restarted bridge waits that long.
RECONNECT_GAP_SECS = 1.2


@pytest.fixture(scope="module")
def client_cert(pki: DevPki) -> CertPair:
    return pki.client("downlink-sessions")


@pytest.fixture
def private_broker(pki: DevPki, tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of the test's own that keeps persistent sessions across a restart."""
    with LocalBroker(tmp_path / "broker", pki, persistence=True) as running:
        yield running


@contextlib.asynccontextmanager
async def bridge_task(
    config: ConnectionConfiguration, task_id: str, *, comes_back: bool = False, topic_filter: str | None = None
) -> AsyncIterator[Bridge]:
    """One bridge task; its subscribers keep their sessions when it stops if it ``comes_back`` with ``task_id``.

    Every test ends the sessions it kept: a session nobody resumes would take its share of a later test's downlinks.
    """
    registry = CollectorRegistry()
    factory = CrtClientFactory(config, task_id, end_sessions_on_stop=not comes_back)
    pool = MqttPool("default", PoolSettings.from_configuration(config), factory, UplinkMetrics(registry))
    settings = dataclasses.replace(FAST_SETTINGS, leave_unsent_on_stop=comes_back)  # BRIDGE_KEEP_DOWNLINK_SESSIONS
    downlinks = DownlinkService("default", config, pool, registry, settings)
    if topic_filter is not None:
        downlinks.topic_filter = topic_filter
    async with pool, downlinks:
        yield Bridge(pool, downlinks, registry)


async def publish(
    broker: LocalBroker, index: int, *, dev_eui: str | None = None, expiry_secs: int | None = None
) -> None:
    """Downlink ``index`` at QoS 1 with its messageId, from the application's side."""
    dev_eui = dev_eui or f"70B3D57ED{index:07X}"
    document = f'{{"payload_hex": "{index:04x}", "correlationId": "c{index}"}}'
    expiry = [] if expiry_secs is None else ["-D", "publish", "message-expiry-interval", str(expiry_secs)]
    process = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", broker.host, "-p", str(broker.ports.plain), "-V", "5", "-q", "1",
        "-t", f"tpx/things/{dev_eui}/downlink", "-m", document,
        "-D", "publish", "user-property", "messageId", f"downlink-{index}", *expiry,
    )  # fmt: skip
    assert await process.wait() == 0


async def until_subscribed(broker: LocalBroker, lns: LocalLns, *bridges: Bridge) -> int:
    """Probe downlinks (indexes from 10,000) until each bridge received one; returns how many reached the LNS."""
    probe = 10_000
    async with asyncio.timeout(OPEN_TIMEOUT_SECS):
        while not all(bridge.sample("bridge_downlinks_received_total") > 0 for bridge in bridges):
            await publish(broker, probe)
            probe += 1
            await asyncio.sleep(0.2)
    received = sum(bridge.sample("bridge_downlinks_received_total") for bridge in bridges)
    await wait_until(lambda: len(lns.requests) >= received)  # probes sent before a subscription existed are gone
    await asyncio.sleep(0.3)
    return len(lns.requests)


def payloads(lns: LocalLns, after: int) -> list[str]:
    return sorted(request.query["Payload"] for request in lns.requests[after:])


def expected(indexes: range) -> list[str]:
    return sorted(f"{index:04x}" for index in indexes)


async def settle(lns: LocalLns, count: int) -> None:
    """Wait for ``count`` requests, then a moment more, in which a duplicate would arrive."""
    await asyncio.to_thread(lns.wait_for, count, 30.0)
    await asyncio.sleep(1.0)


async def test_downlinks_in_flight_and_published_across_a_broker_restart_reach_the_lns_once(
    private_broker: LocalBroker, client_cert: CertPair, lns: LocalLns
) -> None:
    broker = private_broker
    config = configuration(broker, client_cert, lns)
    # mosquitto does not restore a persistent session's shared subscription (module docstring of devtools.broker).
    async with bridge_task(config, unique_task_id("restart"), topic_filter=PLAIN_FILTER) as bridge:
        probes = await until_subscribed(broker, lns, bridge)
        # The network server answers slowly: the downlinks are in flight, not yet acknowledged, when the broker goes.
        lns.respond_with(lambda _request: Answer(delay_secs=0.5))
        for index in range(10):
            await publish(broker, index)
        await asyncio.to_thread(lns.wait_for, probes + 1, 10.0)
        broker.stop()
        broker.start()
        lns.respond_with(lambda _request: Answer())
        for index in range(10, 20):  # queued in the subscriber's session until it is back
            await publish(broker, index)
        await settle(lns, probes + 20)
        redelivered = bridge.sample("bridge_downlinks_duplicate_total")
    assert payloads(lns, probes) == expected(range(20))
    assert redelivered > 0  # the broker delivered again what was in flight; the bridge did not send it twice


async def test_downlinks_published_while_the_bridge_restarts_reach_the_lns_once(
    broker: LocalBroker, client_cert: CertPair, lns: LocalLns
) -> None:
    config = configuration(broker, client_cert, lns)
    task_id = unique_task_id("same-task")
    async with bridge_task(config, task_id, comes_back=True) as bridge:
        probes = await until_subscribed(broker, lns, bridge)
        for index in range(10):
            await publish(broker, index)
        await asyncio.to_thread(lns.wait_for, probes + 10, 10.0)
    for index in range(10, 20):  # nobody is subscribed now: the broker keeps them for the stopped task's session
        await publish(broker, index)
    await asyncio.sleep(RECONNECT_GAP_SECS)
    async with bridge_task(config, task_id):
        await settle(lns, probes + 20)
    assert payloads(lns, probes) == expected(range(20))


async def test_two_bridges_on_a_shared_subscription_one_restarting_deliver_each_downlink_once(
    broker: LocalBroker, client_cert: CertPair, lns: LocalLns
) -> None:
    config = configuration(broker, client_cert, lns)
    second_id = unique_task_id("second")
    async with bridge_task(config, unique_task_id("first")) as first:
        async with bridge_task(config, second_id, comes_back=True) as second:
            probes = await until_subscribed(broker, lns, first, second)
            for index in range(20):  # the last ones may reach the second task as it stops: it leaves them unsent
                await publish(broker, index)
        for index in range(20, 40):  # the second task is down: its share waits in its session
            await publish(broker, index)
        await asyncio.sleep(RECONNECT_GAP_SECS)
        async with bridge_task(config, second_id) as second_again:
            for index in range(40, 60):
                await publish(broker, index)
            await settle(lns, probes + 60)
            shares = [first.sample("bridge_downlinks_sent_total", lns="thingpark")]
            shares.append(second_again.sample("bridge_downlinks_sent_total", lns="thingpark"))
    assert payloads(lns, probes) == expected(range(60))
    assert all(share > 0 for share in shares)  # both tasks took part after the restart


async def test_a_downlink_whose_mqtt_message_expiry_ends_while_it_waits_is_not_sent_and_says_expired(
    broker: LocalBroker, client_cert: CertPair, lns: LocalLns
) -> None:
    config = configuration(broker, client_cert, lns)
    dev_eui = "70B3D57ED00000EE"
    async with bridge_task(config, unique_task_id("expiry")) as bridge, Application(config) as app:
        probes = await until_subscribed(broker, lns, bridge)
        await asyncio.sleep(0.3)
        while not app.messages.empty():  # the probes' feedback
            app.messages.get_nowait()
        # Each answer takes 0.8 s (within the bridge's 1 s read timeout); one device's downlinks go one at a time,
        # so the last one's turn comes 3.2 s after the first's, long after its 1 s (even if publishing is slow).
        lns.respond_with(lambda _request: Answer(delay_secs=0.8))
        for index in range(1, 5):
            await publish(broker, index, dev_eui=dev_eui)
        await publish(broker, 5, dev_eui=dev_eui, expiry_secs=1)
        feedback = await app.feedback(5, timeout_secs=15.0)
        await asyncio.sleep(0.5)
    assert sorted((status, document["correlationId"]) for status, document in feedback) == [
        ("expired", "c5"),
        *(("queued", f"c{index}") for index in range(1, 5)),
    ]
    assert payloads(lns, probes) == ["0001", "0002", "0003", "0004"]


async def test_a_task_that_does_not_come_back_ends_its_sessions_so_no_downlink_waits_for_it(
    broker: LocalBroker, client_cert: CertPair, lns: LocalLns
) -> None:
    config = configuration(broker, client_cert, lns)
    task_id = unique_task_id("replaced")
    async with bridge_task(config, task_id) as bridge:  # stops as a replaced Fargate task does
        probes = await until_subscribed(broker, lns, bridge)
    for index in range(5):  # no session holds the subscription now: nothing keeps these
        await publish(broker, index)
    await asyncio.sleep(RECONNECT_GAP_SECS)
    async with bridge_task(config, task_id) as again:
        await wait_until(lambda: again.pool.opened_clients == 2)
        await asyncio.sleep(1.0)  # a resumed session would deliver its queue now
        received = again.sample("bridge_downlinks_received_total")
    assert received == 0
    assert len(lns.requests) == probes
