"""The local run's own MQTT client: counts the uplinks that reach mosquitto and plays the cloud side's downlinks.

It connects with a dev client certificate to mosquitto's own mTLS listener, not to the enforcing stand-in: it is a
measurement tool reading the whole fleet's uplinks (which at 1000/s no single AWS connection could), not a client
under test. It subscribes to the uplink filter and to the downlink feedback topics, and publishes downlink requests
on the downlink topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import orjson

from bridge_container.exceptions import MqttError
from bridge_container.mqtt.crt import CrtMqttClient
from bridge_container.mqtt.port import ClientCallbacks, ClientSettings, InboundMessage, MqttClient
from bridge_container.states import ConnectionState
from bridge_domain.lns import LnsKind
from bridge_domain.topics import TopicPattern
from devtools.broker import LocalBroker
from devtools.pki import CertPair

logger = logging.getLogger(__name__)

WATCHER_CLIENT_ID = "make-run-watcher"
OPENED_TIMEOUT_SECS = 10.0
POLL_SECS = 0.05
DOWNLINK_FPORT = 10


@dataclass(slots=True)
class WatchStats:
    """What arrived at the broker, as seen by a subscriber."""

    uplinks: int = 0
    uplink_devices: set[str] = field(default_factory=set)
    feedback: Counter[str] = field(default_factory=Counter)  # by status level: queued, sent, failed
    downlinks_published: int = 0


class BrokerWatcher:
    """Subscribes to the uplink and feedback topics; publishes downlinks. Use as an async context manager."""

    def __init__(self, broker: LocalBroker, cert: CertPair, uplink: TopicPattern, downlink: TopicPattern) -> None:
        self.stats = WatchStats()
        self._uplink = uplink
        self._downlink = downlink
        settings = ClientSettings(
            client_id=WATCHER_CLIENT_ID,
            endpoint=broker.host,
            port=broker.ports.tls_unenforced if broker.enforce else broker.ports.tls,
            protocol="SSL",
            region="local",
            keep_alive_secs=60,
            ca_pem=broker.ca_file.read_bytes(),
            certificate_pem=cert.cert_path.read_bytes(),
            private_key_pem=cert.key_path.read_bytes(),
        )
        self._client = CrtMqttClient(settings, ClientCallbacks(on_state=self._on_state, on_message=self._on_message))

    @property
    def state(self) -> ConnectionState:
        return self._client.state

    def _on_state(self, _client: MqttClient, state: ConnectionState) -> None:
        logger.debug("watcher is %s", state)

    def _on_message(self, message: InboundMessage) -> None:
        values = self._uplink.parse_topic(message.topic)
        if values is not None:
            self.stats.uplinks += 1
            self.stats.uplink_devices.add(values.get("DevEUI", ""))
            return
        status = message.topic.rsplit("/", 1)[-1]
        self.stats.feedback[status] += 1

    async def start(self, opened_timeout_secs: float = OPENED_TIMEOUT_SECS) -> None:
        """Connect, wait until OPENED, subscribe; raise MqttError when the broker does not accept us in time."""
        await self._client.start()
        deadline = time.monotonic() + opened_timeout_secs
        while self._client.state is not ConnectionState.OPENED:
            if time.monotonic() > deadline:
                raise MqttError(f"the watcher is {self._client.state} after {opened_timeout_secs:g}s, not OPENED")
            await asyncio.sleep(POLL_SECS)
        await self._client.subscribe(self._uplink.subscription_filter())
        await self._client.subscribe(self._downlink.subscription_filter() + "/+")

    async def stop(self) -> None:
        await self._client.stop()

    async def send_downlink(self, dev_eui: str, lns: LnsKind, sequence: int) -> bool:
        """Publish one downlink request in the bridge's document form; False when the publish failed."""
        topic = self._downlink.render({"DevEUI": dev_eui})
        document = {
            "payload_hex": f"01{sequence % 256:02x}",
            "FPort": DOWNLINK_FPORT,
            "lns": lns,
            "correlationId": f"make-run-{sequence}",
        }
        try:
            await self._client.publish(topic, orjson.dumps(document))
        except MqttError as exc:
            logger.warning("downlink %d not published: %s", sequence, exc)
            return False
        self.stats.downlinks_published += 1
        return True
