"""Fixtures for the downlink integration tests: a local HTTP server playing the network servers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from bridge_container.downlink.sender import HttpSettings, RetryPolicy
from bridge_container.downlink.service import DownlinkService, DownlinkSettings
from bridge_container.metrics import UplinkMetrics
from bridge_container.mqtt.crt import CrtClientFactory
from bridge_container.mqtt.port import ClientCallbacks, InboundMessage, MqttClient
from bridge_container.states import ConnectionState
from bridge_container.uplink.pool import MqttPool, PoolSettings
from bridge_domain.connection import Connection, ConnectionConfiguration
from devtools.broker import LocalBroker
from devtools.local_lns import LocalLns, RecordedRequest
from devtools.pki import CertPair

WINDOW_SLACK_SECS = 0.02  # loopback delivery jitter between the limiter's grant and the server's clock


@pytest.fixture
def lns() -> Iterator[LocalLns]:
    with LocalLns() as server:
        yield server


def max_in_window(requests: list[RecordedRequest], window_secs: float) -> int:
    """Most requests that arrived inside any half-open window of ``window_secs``."""
    times = sorted(request.arrived_at for request in requests)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window_secs:
            start += 1
        best = max(best, end - start + 1)
    return best


# --- a bridge instance and an application on the local broker -------------------------------------------------
CERT_ID = "ab" * 32
AS_KEY = "00112233445566778899aabbccddeeff"
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_secs=0.01, max_delay_secs=0.02)
FAST_SETTINGS = DownlinkSettings(http=HttpSettings(read_timeout_secs=1.0, retry=FAST_RETRY), drain_deadline_secs=2.0)
OPEN_TIMEOUT_SECS = 15.0
# IoT Core refuses a second CONNECT of a client ID within a second: tests that follow each other faster than that
# must not share client IDs, so every bridge and application here gets a task ID of its own.
_INSTANCES = itertools.count(1)


def unique_task_id(task_id: str) -> str:
    return f"{task_id}-{next(_INSTANCES)}"


def configuration(broker: LocalBroker, client: CertPair, lns: LocalLns, **overrides: Any) -> ConnectionConfiguration:
    """A connection to the local broker over mTLS whose ThingPark downlinks go to ``lns``."""
    document: dict[str, Any] = {
        "deviceType": "test-sensor",
        "region": "eu-central-1",
        "certificateId": CERT_ID,
        "certificate": client.cert_pem,
        "privateKey": client.key_pem,
        "broker": {"host": broker.host, "port": broker.ports.tls, "caCertificate": broker.pki.ca.cert_pem},
        "lns": [
            {
                "kind": "thingpark",
                "asId": "as.test",
                "asKey": AS_KEY,
                "downlinkUrl": f"{lns.url}/thingpark/lrc/rest/downlink",
            }
        ],
        "poolSize": 2,
        "uplinkRatePerSec": 200,
        "registerThings": False,
        "downlinkPort": 9,
    }
    document.update(overrides)
    connection = Connection.model_validate(
        {"connectorId": "actility-aws-iot", "name": "test", "configuration": document}
    )
    return connection.configuration


@dataclass
class Bridge:
    """One bridge task's pool and downlink service."""

    pool: MqttPool
    downlinks: DownlinkService
    registry: CollectorRegistry

    def sample(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, {"connection": self.downlinks.connection_id, **labels})
        return value or 0.0


@contextlib.asynccontextmanager
async def running_bridge(
    config: ConnectionConfiguration, task_id: str, settings: DownlinkSettings = FAST_SETTINGS
) -> AsyncIterator[Bridge]:
    registry = CollectorRegistry()
    pool = MqttPool(
        "default",
        PoolSettings.from_configuration(config),
        CrtClientFactory(config, unique_task_id(task_id)),
        UplinkMetrics(registry),
    )
    async with pool, DownlinkService("default", config, pool, registry, settings) as downlinks:
        yield Bridge(pool, downlinks, registry)


class Application:
    """The customer's side: publishes downlinks and listens to the feedback topics, over the real client library."""

    def __init__(self, config: ConnectionConfiguration, task_id: str = "app", *, feedback: bool = True) -> None:
        self.feedback_subscribed = feedback
        self.messages: asyncio.Queue[InboundMessage] = asyncio.Queue()
        self._opened = asyncio.Event()
        callbacks = ClientCallbacks(on_state=self._on_state, on_message=self.messages.put_nowait)
        self.client = CrtClientFactory(config, unique_task_id(task_id))(0, callbacks)

    def _on_state(self, _client: MqttClient, state: ConnectionState) -> None:
        if state is ConnectionState.OPENED:
            self._opened.set()

    async def __aenter__(self) -> Application:
        await self.client.start()
        await asyncio.wait_for(self._opened.wait(), OPEN_TIMEOUT_SECS)
        if self.feedback_subscribed:
            await self.client.subscribe("tpx/things/+/downlink/+")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.stop()

    async def send(self, dev_eui: str, document: dict[str, Any] | bytes) -> None:
        payload = document if isinstance(document, bytes) else orjson.dumps(document)
        await self.client.publish(f"tpx/things/{dev_eui}/downlink", payload)

    async def feedback(self, count: int, timeout_secs: float = 10.0) -> list[tuple[str, dict[str, Any]]]:
        """The next ``count`` feedback messages as (status, document)."""
        received: list[tuple[str, dict[str, Any]]] = []
        async with asyncio.timeout(timeout_secs):
            while len(received) < count:
                message = await self.messages.get()
                received.append((message.topic.rsplit("/", 1)[1], orjson.loads(message.payload)))
        return received


async def wait_until(condition: Callable[[], bool], timeout_secs: float = OPEN_TIMEOUT_SECS) -> None:
    async with asyncio.timeout(timeout_secs):
        # Polls state owned by other components, which signal no event.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def until_subscribed(app: Application, *bridges: Bridge) -> None:
    """Send probe downlinks until every bridge received one (the shared subscription is then in place on each)."""
    async with asyncio.timeout(OPEN_TIMEOUT_SECS):
        sent = 0
        while not all(bridge.sample("bridge_downlinks_received_total") > 0 for bridge in bridges):
            await app.send("00000000000000FF", {"payload_hex": "00", "correlationId": f"probe-{sent}"})
            sent += 1
            await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    while not app.messages.empty():  # the probes' feedback is not part of a test
        app.messages.get_nowait()
