"""Micro-benchmark: the calling thread's cost of one ``CrtMqttClient.publish_nowait`` on the fast path.

One client, mTLS to a local mosquitto, QoS 0 publishes of a fixed topic and payload. The timed loop only hands
publishes to CRT (what the pool's dispatcher pays per uplink); completions are awaited afterwards, outside the
timing. Each round reports nanoseconds per call; the minimum over the rounds is the figure least disturbed by
other processes. ``--rounds 0`` connects and publishes nothing: run it under callgrind with and without publishes
to count the calling thread's instructions per call. ``--properties`` gives every publish the five MQTT 5 user
properties an uplink carries (``MessageId``, ``DevEUI``, ``LnsKind``, ``EventType``, ``FPort``); ``--qos 1`` waits for
PUBACKs instead of writes.

    python -m benchmarks.publish_call [--calls 20000] [--rounds 7] [--properties] [--qos 0|1]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

from bridge_container.mqtt.crt import CrtMqttClient
from bridge_container.mqtt.port import (
    ClientCallbacks,
    InboundMessage,
    MqttClient,
    UserProperties,
    UserProperty,
    client_settings,
)
from bridge_container.states import ConnectionState
from bridge_domain.connection import Connection
from devtools.broker import LocalBroker
from devtools.pki import DevPki

TOPIC = "bench/things/0000000000000001/uplink"
PAYLOAD = b'{"DevEUI": "0000000000000001", "payload": "00112233445566778899"}'
PROPERTIES: UserProperties = (
    UserProperty("MessageId", "3f9a61c2d0e4-123456"),
    UserProperty("DevEUI", "0000000000000001"),
    UserProperty("LnsKind", "chirpstack"),
    UserProperty("EventType", "uplink"),
    UserProperty("FPort", "10"),
)
OPEN_TIMEOUT_SECS = 15.0
DONE_TIMEOUT_SECS = 30.0


class Completions:
    """Counts completions arriving on CRT threads; wakes the loop once when ``expected`` have arrived."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.count = 0
        self.failed = 0
        self.expected = 0
        self.all_done: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._lock = threading.Lock()

    def __call__(self, failure: str | None) -> None:
        with self._lock:
            self.count += 1
            self.failed += failure is not None
            if self.count == self.expected:
                self._loop.call_soon_threadsafe(self.all_done.set_result, None)

    async def wait(self, expected: int) -> None:
        # One wake-up per round, no polling: the calling thread's work stays the same from run to run.
        self.all_done = self._loop.create_future()
        with self._lock:
            self.expected = expected
            if self.count >= expected:
                return
        await asyncio.wait_for(self.all_done, DONE_TIMEOUT_SECS)


def _connection(broker: LocalBroker, pki: DevPki) -> Connection:
    cert = pki.client("bench")
    return Connection.model_validate(
        {
            "connectorId": "actility-aws-iot",
            "name": "publish call benchmark",
            "configuration": {
                "deviceType": "bench",
                "region": "eu-central-1",
                "certificateId": "ab" * 32,
                "certificate": cert.cert_pem,
                "privateKey": cert.key_pem,
                "broker": {"host": broker.host, "port": broker.ports.tls, "caCertificate": pki.ca.cert_pem},
                "poolSize": 1,
                "uplinkRatePerSec": 100,
                "registerThings": False,
            },
        }
    )


async def _wait(condition: object, timeout_secs: float) -> None:
    deadline = time.monotonic() + timeout_secs
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(0.01)


async def measure(
    broker: LocalBroker, pki: DevPki, calls: int, rounds: int, properties: UserProperties | None = None, qos: int = 0
) -> list[float]:
    """Nanoseconds per ``publish_nowait`` call, one figure per round."""

    def on_state(_client: MqttClient, _state: ConnectionState) -> None:
        pass

    def on_message(_message: InboundMessage) -> None:
        pass

    settings = client_settings(_connection(broker, pki).configuration, "bench", 0)
    client = CrtMqttClient(settings, ClientCallbacks(on_state=on_state, on_message=on_message))
    await client.start()
    results: list[float] = []
    try:
        await _wait(lambda: client.state is ConnectionState.OPENED, OPEN_TIMEOUT_SECS)
        if not client.uses_native_publish:
            raise SystemExit("the fast path is not in use (another awscrt release?)")
        done = Completions(asyncio.get_running_loop())
        publish = client.publish_nowait
        expected = 0
        for _ in range(rounds):
            start = time.perf_counter_ns()
            for _ in range(calls):
                publish(TOPIC, PAYLOAD, done, properties, qos)
            results.append((time.perf_counter_ns() - start) / calls)
            expected += calls
            await done.wait(expected)
        if done.failed:
            raise SystemExit(f"{done.failed} publishes failed")
    finally:
        await client.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--properties", action="store_true", help="send an uplink's five user properties")
    parser.add_argument("--qos", type=int, choices=(0, 1), default=0)
    arguments = parser.parse_args()
    properties = PROPERTIES if arguments.properties else None
    with tempfile.TemporaryDirectory() as workdir:
        pki = DevPki(Path(workdir) / "pki")
        with LocalBroker(Path(workdir) / "broker", pki) as broker:
            results = asyncio.run(measure(broker, pki, arguments.calls, arguments.rounds, properties, arguments.qos))
    if results:
        rounds = ", ".join(f"{value:.0f}" for value in results)
        print(f"publish_nowait: min {min(results):.0f} ns/call over {len(results)} rounds ({rounds})")


if __name__ == "__main__":
    main()
