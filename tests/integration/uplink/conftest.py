"""Uplink integration helpers: connections to the local broker and an independent awscrt subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from awscrt import mqtt5

from bridge_domain.connection import Connection
from devtools.broker import LocalBroker
from devtools.pki import CertPair

CERT_ID = "cd" * 32
OPEN_TIMEOUT_SECS = 15.0


def connection_document(
    server: LocalBroker, client: CertPair, *, ca_pem: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """A POST /connections body for the local broker over mTLS (``ca_pem`` replaces the trusted CA)."""
    configuration: dict[str, Any] = {
        "deviceType": "test-sensor",
        "region": "eu-central-1",
        "certificateId": CERT_ID,
        "certificate": client.cert_pem,
        "privateKey": client.key_pem,
        "broker": {"host": server.host, "port": server.ports.tls, "caCertificate": ca_pem or server.pki.ca.cert_pem},
        "poolSize": 2,
        "registerThings": False,
    }
    configuration.update(overrides)
    configuration.setdefault("uplinkRatePerSec", 100 * configuration["poolSize"])
    return {"connectorId": "actility-aws-iot", "name": "uplink test", "configuration": configuration}


def connection_for(server: LocalBroker, client: CertPair, **overrides: Any) -> Connection:
    return Connection.model_validate(connection_document(server, client, **overrides))


@dataclass
class Received:
    topic: str
    payload: bytes
    at: float
    properties: dict[str, str] = field(default_factory=dict)  # MQTT 5 user properties


@dataclass
class Subscriber:
    """An awscrt MQTT 5 client of its own, independent of the bridge's adapter, recording what arrives.

    A measurement tool, not an AWS client: it reads on the broker's plain observer port, held to no rule.
    """

    broker: LocalBroker
    topic_filter: str
    messages: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: Any = None

    def _on_publish(self, data: Any) -> None:
        packet = data.publish_packet
        with self._lock:
            properties = {prop.name: prop.value for prop in packet.user_properties or ()}
            self.messages.append(Received(packet.topic, bytes(packet.payload), time.monotonic(), properties))

    async def start(self) -> None:
        connected = threading.Event()
        self._client = mqtt5.Client(
            mqtt5.ClientOptions(
                host_name=self.broker.host,
                port=self.broker.ports.plain,
                connect_options=mqtt5.ConnectPacket(client_id=f"test-subscriber-{id(self)}"),
                on_publish_callback_fn=self._on_publish,
                on_lifecycle_event_connection_success_fn=lambda _data: connected.set(),
            )
        )
        self._client.start()
        assert await asyncio.to_thread(connected.wait, OPEN_TIMEOUT_SECS), "subscriber did not connect"
        packet = mqtt5.SubscribePacket(
            subscriptions=[mqtt5.Subscription(self.topic_filter, qos=mqtt5.QoS.AT_MOST_ONCE)]
        )
        await asyncio.wrap_future(self._client.subscribe(packet))

    def stop(self) -> None:
        if self._client is not None:
            self._client.stop()
            self._client = None

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    async def wait_for(self, count: int, timeout_secs: float = 10.0) -> list[Received]:
        """What arrived once ``count`` messages are in, or after ``timeout_secs`` (the caller checks the count)."""
        with contextlib.suppress(AssertionError):
            await wait_until(lambda: len(self.messages) >= count, timeout_secs)
        return self.snapshot()


@pytest.fixture
async def subscribe() -> AsyncIterator[Callable[[LocalBroker, str], Any]]:
    """``await subscribe(broker, filter)`` → a started :class:`Subscriber` on the observer port, stopped after."""
    started: list[Subscriber] = []

    async def start(broker: LocalBroker, topic_filter: str) -> Subscriber:
        subscriber = Subscriber(broker, topic_filter)
        await subscriber.start()
        started.append(subscriber)
        return subscriber

    yield start
    for subscriber in started:
        subscriber.stop()


async def wait_until(condition: Callable[[], bool], timeout_secs: float = OPEN_TIMEOUT_SECS) -> None:
    deadline = time.monotonic() + timeout_secs
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def max_in_window(times: list[float], window_secs: float) -> int:
    """Most events inside any half-open window of ``window_secs``."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window_secs:
            start += 1
        best = max(best, end - start + 1)
    return best
