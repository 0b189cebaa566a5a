"""The Connections API on the real bridge service: changes start, restart and stop pools on mosquitto at once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from bridge_container.connections.factory import build_connections_api
from bridge_container.mqtt.connects import CONNECT_INTERVAL_SECS
from bridge_container.service import BridgeService
from bridge_container.settings import ConnectionsSettings, ServiceSettings
from bridge_container.states import ConnectionState
from bridge_domain.topics import TopicPattern
from devtools.broker import LocalBroker
from devtools.pki import CertPair, DevPki
from devtools.ports import free_port
from devtools.watcher import BrokerWatcher
from tests.integration.connections.conftest import ADMIN_TOKEN
from tests.unit.connections.support import certificate_arn

pytestmark = pytest.mark.integration

TIMEOUT_SECS = 15.0
DOWNLINK = TopicPattern.parse("tpx/things/{DevEUI}/downlink", allowed=frozenset({"DevEUI"}))
# IoT Core refuses a second CONNECT of a client ID within a second: each test's bridge gets client IDs of its own.
_TESTS = itertools.count(1)


async def eventually(condition: Callable[[], bool], timeout_secs: float = TIMEOUT_SECS) -> None:
    deadline = time.monotonic() + timeout_secs
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


class Bridge:
    """A BridgeService with the Connections API on the embedded store, serving inside the test's loop."""

    def __init__(self, state_dir: Path, task_id: str) -> None:
        settings = ServiceSettings(task_id=task_id, port=free_port(), emf_interval_secs=0, drain_deadline_secs=2)
        stored = ConnectionsSettings(state_dir=state_dir, admin_token=SecretStr(ADMIN_TOKEN))
        self.service = BridgeService(
            settings,
            connections_api=lambda runtimes: build_connections_api(runtimes, stored),
        )
        self.url = f"http://127.0.0.1:{settings.port}"
        self.http = httpx.AsyncClient(
            base_url=self.url, timeout=10.0, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Bridge:
        self._task = asyncio.get_running_loop().create_task(self.service.run())
        for _ in range(250):
            with contextlib.suppress(httpx.TransportError):
                await self.http.get("/healthz")
                return self
            await asyncio.sleep(0.02)
        raise AssertionError("the bridge did not start serving")

    async def stop(self) -> None:
        self.service.request_shutdown()
        if self._task is not None:
            await asyncio.wait_for(self._task, 30)
        await self.http.aclose()

    async def create(self, body: dict[str, Any]) -> str:
        response = await self.http.post("/connections", json=body)
        assert response.status_code == 201, response.text
        connection_id: str = response.json()["connectionId"]
        return connection_id

    async def state(self, connection_id: str) -> str:
        response = await self.http.get(f"/connections/{connection_id}")
        return str(response.json()["status"]["state"])

    async def wait_opened(self, connection_id: str) -> None:
        deadline = time.monotonic() + TIMEOUT_SECS
        while await self.state(connection_id) != "OPENED":
            assert time.monotonic() < deadline, f"connection {connection_id} never OPENED"
            await asyncio.sleep(0.05)

    async def uplink(self, connection_id: str, dev_eui: str) -> httpx.Response:
        body = orjson.dumps({"DevEUI_uplink": {"DevEUI": dev_eui, "FPort": 2, "FCntUp": 1, "payload_hex": "0867"}})
        path = f"/connections/{connection_id}/uplinks/thingpark"
        return await self.http.post(path, content=body, headers={"Content-Type": "application/json"})


def body(broker: LocalBroker, cert: CertPair, *, region: str = "eu-central-1", **overrides: Any) -> dict[str, Any]:
    configuration: dict[str, Any] = {
        "deviceType": "sensor",
        "region": region,
        "certificateId": certificate_arn(region=region),
        "certificate": cert.cert_pem,
        "privateKey": cert.key_pem,
        "broker": {"host": broker.host, "port": broker.ports.tls, "caCertificate": broker.pki.ca.cert_pem},
        "poolSize": 2,
        "uplinkRatePerSec": 200,
        "registerThings": False,
        "clientIdPrefix": f"live-{region}",
    }
    configuration.update(overrides)
    return {"connectorId": "actility-aws-iot", "name": f"live {region}", "configuration": configuration}


@pytest.fixture
def cert(pki: DevPki) -> CertPair:
    return pki.client("live-bridge")


@pytest.fixture
async def start_bridge(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], Any]]:
    """``await start_bridge()``: a bridge on this test's state directory (call again after a stop to restart)."""
    running: list[Bridge] = []
    task_id = f"{request.node.name[5:13].replace('_', '')}{next(_TESTS)}"

    async def start() -> Bridge:
        bridge = await Bridge(tmp_path / "state", task_id).start()
        running.append(bridge)
        return bridge

    yield start
    for bridge in running:
        if bridge._task is not None and not bridge._task.done():
            await bridge.stop()


@pytest.fixture
async def watch(pki: DevPki, broker: LocalBroker) -> AsyncIterator[Callable[[str], Any]]:
    """``await watch(uplink_pattern)``: a subscriber on mosquitto counting what arrives."""
    started: list[BrokerWatcher] = []

    async def start(pattern: str) -> BrokerWatcher:
        watcher = BrokerWatcher(broker, pki.client("live-watcher"), TopicPattern.parse(pattern), DOWNLINK)
        started.append(watcher)
        await watcher.start()
        return watcher

    yield start
    for watcher in started:
        await watcher.stop()


async def test_created_connection_publishes_uplinks_through_mosquitto(
    start_bridge: Any, watch: Any, broker: LocalBroker, cert: CertPair
) -> None:
    bridge = await start_bridge()
    watcher = await watch("tpx/things/{DevEUI}/uplink")
    connection_id = await bridge.create(body(broker, cert))
    await bridge.wait_opened(connection_id)
    assert (await bridge.uplink(connection_id, "70B3D57ED0000A01")).status_code == 202
    await eventually(lambda: "70B3D57ED0000A01" in watcher.stats.uplink_devices)
    await bridge.stop()


async def test_deleted_connection_is_drained_and_its_pool_closed(
    start_bridge: Any, broker: LocalBroker, cert: CertPair
) -> None:
    bridge = await start_bridge()
    connection_id = await bridge.create(body(broker, cert))
    await bridge.wait_opened(connection_id)
    pool = bridge.service.runtime(connection_id).pool
    assert (await bridge.http.delete(f"/connections/{connection_id}")).status_code == 204
    assert pool.state is ConnectionState.DEACTIVATED
    assert set(pool.states.values()) <= {ConnectionState.DEACTIVATED}
    assert connection_id not in bridge.service.health()[1]["connections"]
    assert (await bridge.uplink(connection_id, "70B3D57ED0000A02")).status_code == 404
    assert (await bridge.http.get(f"/connections/{connection_id}")).status_code == 404


async def test_replacing_a_connection_restarts_it_with_the_new_configuration(
    start_bridge: Any, watch: Any, broker: LocalBroker, cert: CertPair
) -> None:
    bridge = await start_bridge()
    connection_id = await bridge.create(body(broker, cert))
    await bridge.wait_opened(connection_id)
    first_pool = bridge.service.runtime(connection_id).pool
    watcher = await watch("tpx/v2/{DevEUI}/up")
    replaced = await bridge.http.put(
        f"/connections/{connection_id}",
        json=body(broker, cert, uplinkTopicPattern="tpx/v2/{DevEUI}/up", poolSize=1, uplinkRatePerSec=100),
    )
    assert replaced.status_code == 200, replaced.text
    await bridge.wait_opened(connection_id)
    runtime = bridge.service.runtime(connection_id)
    assert runtime.pool is not first_pool
    assert len(runtime.pool.states) == 1
    assert (await bridge.uplink(connection_id, "70B3D57ED0000A03")).status_code == 202
    await eventually(lambda: "70B3D57ED0000A03" in watcher.stats.uplink_devices)


async def test_two_connections_run_at_once_each_with_its_own_pool(
    start_bridge: Any, watch: Any, broker: LocalBroker, cert: CertPair
) -> None:
    bridge = await start_bridge()
    watcher = await watch("tpx/things/{DevEUI}/uplink")
    frankfurt = await bridge.create(body(broker, cert, region="eu-central-1"))
    ireland = await bridge.create(body(broker, cert, region="eu-west-1", uplinkRatePerSec=50))
    await bridge.wait_opened(frankfurt)
    await bridge.wait_opened(ireland)
    pools = [bridge.service.runtime(connection_id).pool for connection_id in (frankfurt, ireland)]
    assert pools[0] is not pools[1]
    assert set(pools[0].states).isdisjoint(pools[1].states)  # client IDs of their own
    assert (await bridge.uplink(frankfurt, "70B3D57ED0000B01")).status_code == 202
    assert (await bridge.uplink(ireland, "70B3D57ED0000B02")).status_code == 202
    await eventually(lambda: {"70B3D57ED0000B01", "70B3D57ED0000B02"} <= watcher.stats.uplink_devices)


async def test_connections_survive_a_restart_of_the_embedded_store(
    start_bridge: Any, watch: Any, broker: LocalBroker, cert: CertPair
) -> None:
    first = await start_bridge()
    connection_id = await first.create(body(broker, cert))
    await first.wait_opened(connection_id)
    await first.stop()
    # A new process has no memory of its predecessor's connects; a real restart takes longer than AWS IoT's one
    # connect per second per client ID (a faster one would be refused with CONNACK 0x9F and retried by CRT).
    await asyncio.sleep(CONNECT_INTERVAL_SECS)
    second = await start_bridge()
    listed = (await second.http.get("/connections")).json()["connections"]
    assert [item["connectionId"] for item in listed] == [connection_id]
    await second.wait_opened(connection_id)
    watcher = await watch("tpx/things/{DevEUI}/uplink")
    assert (await second.uplink(connection_id, "70B3D57ED0000C01")).status_code == 202
    await eventually(lambda: "70B3D57ED0000C01" in watcher.stats.uplink_devices)


async def test_replacing_a_connection_keeps_the_uplinks_it_had_buffered(
    start_bridge: Any, watch: Any, broker: LocalBroker, cert: CertPair
) -> None:
    bridge = await start_bridge()
    watcher = await watch("tpx/things/{DevEUI}/uplink")
    slow = body(broker, cert, poolSize=1, uplinkRatePerSec=4, perClientRatePerSec=4)
    connection_id = await bridge.create(slow)
    await bridge.wait_opened(connection_id)
    dev_euis = [f"70B3D57ED0000D{index:02X}" for index in range(12)]
    for dev_eui in dev_euis:  # 12 uplinks at 4/s: most of them wait in the buffer
        assert (await bridge.uplink(connection_id, dev_eui)).status_code == 202
    assert bridge.service.runtime(connection_id).pool.depth > 0
    slow["configuration"]["description"] = "replaced while uplinks were waiting"
    assert (await bridge.http.put(f"/connections/{connection_id}", json=slow)).status_code == 200
    await eventually(lambda: set(dev_euis) <= watcher.stats.uplink_devices)
    assert watcher.stats.uplinks == len(dev_euis)


async def test_a_connection_that_cannot_start_says_why_and_logs_no_traceback(
    start_bridge: Any, broker: LocalBroker, cert: CertPair, caplog: pytest.LogCaptureFixture
) -> None:
    bridge = await start_bridge()
    no_endpoint = body(broker, cert)
    del no_endpoint["configuration"]["broker"]  # no accountPrefix either: nothing to connect to
    created = await bridge.http.post("/connections", json=no_endpoint)
    assert created.status_code == 201, created.text
    status = created.json()["status"]
    assert status["state"] == "CLOSED"
    assert status["reason"].startswith("cannot start: the connection has no endpoint")
    assert "accountPrefix" in status["reason"]
    read = await bridge.http.get(f"/connections/{created.json()['connectionId']}")
    assert read.json()["status"]["reason"] == status["reason"]
    assert not [record for record in caplog.records if record.exc_info], "a traceback was logged"
    assert any("cannot start" in record.getMessage() for record in caplog.records)


async def test_an_unreachable_broker_is_named_in_the_state_and_in_healthz(
    start_bridge: Any, broker: LocalBroker, cert: CertPair, pki: DevPki
) -> None:
    bridge = await start_bridge()
    closed_port = free_port()
    document = body(broker, cert, poolSize=1, uplinkRatePerSec=50)
    document["configuration"]["broker"] = {"host": broker.host, "port": closed_port, "caCertificate": pki.ca.cert_pem}
    connection_id = await bridge.create(document)

    async def status() -> dict[str, Any]:
        answer: dict[str, Any] = (await bridge.http.get(f"/connections/{connection_id}")).json()["status"]
        return answer

    deadline = time.monotonic() + TIMEOUT_SECS
    while (await status())["state"] != "UNREACHABLE":
        assert time.monotonic() < deadline, await status()
        await asyncio.sleep(0.05)
    reported = await status()
    assert f"{broker.host}:{closed_port}" in reported["reason"]
    assert "cannot be reached" in reported["reason"]
    assert [client["state"] for client in reported["clients"]] == ["UNREACHABLE"]
    assert reported["clients"][0]["reason"] in reported["reason"]
    health = await bridge.http.get("/healthz")
    assert health.status_code == 503
    assert health.json()["unhealthy"] == [
        {"connection": connection_id, "state": "UNREACHABLE", "reason": reported["reason"]}
    ]
