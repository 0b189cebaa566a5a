"""A stand-in of these tests' own (they break IoT Core's rules on purpose) and an awscrt MQTT 5 client to drive it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from awscrt import mqtt5
from awsiot import mqtt5_client_builder

from devtools.broker import LocalBroker
from devtools.iotcore.client import StandInClient, Violations
from devtools.pki import CertPair, DevPki

CONNECT_TIMEOUT_SECS = 10.0
SETTLE_SECS = 0.5  # loopback delivery of a burst, stand-in → mosquitto → observer


@pytest.fixture(scope="module")
def stand_in_broker(pki: DevPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """Not the session's ``broker``: violations here are the point, and would fail the tests there."""
    with LocalBroker(tmp_path_factory.mktemp("stand-in"), pki) as running:
        yield running


@pytest.fixture
def counters(stand_in_broker: LocalBroker) -> StandInClient:
    """The stand-in's counters, reset for this test."""
    assert stand_in_broker.stand_in is not None
    stand_in_broker.stand_in.reset()
    return stand_in_broker.stand_in


@dataclass
class AwsClient:
    """An awscrt MQTT 5 client as a device or application would use it, client-side validation off."""

    client_id: str
    port: int
    broker: LocalBroker
    cert: CertPair | None = None  # None: WebSockets
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    disconnect_reasons: list[Any] = field(default_factory=list)
    failures: list[Any] = field(default_factory=list)
    connected: threading.Event = field(default_factory=threading.Event)
    _client: Any = None

    def _on_publish(self, data: Any) -> None:
        self.messages.append((data.publish_packet.topic, bytes(data.publish_packet.payload)))

    def _on_disconnection(self, data: Any) -> None:
        packet = data.disconnect_packet
        self.disconnect_reasons.append(packet.reason_code if packet is not None else None)

    def _on_failure(self, data: Any) -> None:
        packet = data.connack_packet
        self.failures.append(packet.reason_code if packet is not None else data.exception)

    def start(self, *, wait: bool = True) -> AwsClient:
        common: dict[str, Any] = {
            "endpoint": self.broker.host,
            "port": self.port,
            "client_id": self.client_id,
            "ca_filepath": str(self.broker.ca_file),
            "extended_validation_and_flow_control_options": mqtt5.ExtendedValidationAndFlowControlOptions.NONE,
            # CRT's default jitter can retry at once: a test client that breaks a rule must not also break the
            # connect rate by reconnecting within the second.
            "min_reconnect_delay_ms": 2_000,
            "retry_jitter_mode": mqtt5.ExponentialBackoffJitterMode.NONE,
            "on_publish_received": self._on_publish,
            "on_lifecycle_connection_success": lambda _data: self.connected.set(),
            "on_lifecycle_connection_failure": self._on_failure,
            "on_lifecycle_disconnection": self._on_disconnection,
        }
        if self.cert is not None:
            self._client = mqtt5_client_builder.mtls_from_path(
                str(self.cert.cert_path), str(self.cert.key_path), **common
            )
        else:
            self._client = mqtt5_client_builder.websockets_with_custom_handshake(
                lambda transform_args, **_kwargs: transform_args.set_done(), **common
            )
        self._client.start()
        if wait:
            assert self.connected.wait(CONNECT_TIMEOUT_SECS), f"{self.client_id} did not connect: {self.failures}"
        return self

    def publish(self, topic: str, payload: bytes = b"{}", qos: int = 0) -> Any:
        packet = mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS(qos))
        return self._client.publish(packet)

    def burst(self, topics: list[str], qos: int = 0) -> list[Any]:
        """Publish all at once (they leave within milliseconds) and wait for every completion."""
        futures = [self.publish(topic, qos=qos) for topic in topics]
        return [future.result(CONNECT_TIMEOUT_SECS) for future in futures]

    def subscribe(self, *filters: str) -> Any:
        packet = mqtt5.SubscribePacket([mqtt5.Subscription(f, qos=mqtt5.QoS.AT_MOST_ONCE) for f in filters])
        return self._client.subscribe(packet).result(CONNECT_TIMEOUT_SECS)

    def stop(self) -> None:
        if self._client is not None:
            self._client.stop()
            self._client = None


@pytest.fixture
def aws_client(stand_in_broker: LocalBroker, pki: DevPki) -> Iterator[Any]:
    """``aws_client(client_id, port=None)`` → a started :class:`AwsClient` over mTLS; stopped after the test."""
    started: list[AwsClient] = []
    cert = pki.client("stand-in-test")

    def start(client_id: str, port: int | None = None, *, wait: bool = True, websocket: bool = False) -> AwsClient:
        chosen = port or (stand_in_broker.ports.wss if websocket else stand_in_broker.ports.tls)
        client = AwsClient(client_id, chosen, stand_in_broker, None if websocket else cert)
        started.append(client)
        return client.start(wait=wait)

    yield start
    for client in started:
        client.stop()


async def settled(counters: StandInClient, delay_secs: float = SETTLE_SECS) -> Violations:
    await asyncio.sleep(delay_secs)
    return counters.violations()


def wait_for(condition: Any, timeout_secs: float = CONNECT_TIMEOUT_SECS) -> bool:
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False
