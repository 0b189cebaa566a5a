"""The two status rules a deployment has, carried out locally: the stand-in and moto execute no topic rules.

``enebular_shadow_update`` republishes ``enebular/things/<thing>/shadow/update`` to the thing's shadow (here: moto's
iot-data ``UpdateThingShadow``), and ``enebular_status_push_rule`` sends the shadow's previous and current documents
to the status topic when ``state.reported.enebular.awsiot.connected`` appears or changes (the SQL in
``stacks/rule_sql.py``); moto's SNS delivers that to its subscribers (an SQS queue of the self-test). Like the
watcher, it reads mosquitto's own mTLS listener: it plays AWS's rule engine, not a client held to AWS's limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any, Final

import boto3
from botocore.exceptions import ClientError

from bridge_container.exceptions import MqttError
from bridge_container.mqtt.crt import CrtMqttClient
from bridge_container.mqtt.port import ClientCallbacks, ClientSettings, InboundMessage, MqttClient
from bridge_container.states import ConnectionState
from devtools.broker import LocalBroker
from devtools.pki import CertPair

logger = logging.getLogger(__name__)

RULES_CLIENT_ID: Final = "make-run-rules"
SHADOW_UPDATE_FILTER: Final = "enebular/things/+/shadow/update"
OPENED_TIMEOUT_SECS: Final = 10.0
POLL_SECS: Final = 0.05


def connected_flag(document: dict[str, Any]) -> object:
    """``state.reported.enebular.awsiot.connected`` of a shadow document, or None when absent."""
    value: object = document
    for key in ("state", "reported", "enebular", "awsiot", "connected"):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


class LocalStatusRule:
    """Subscribes to the agents' shadow topic; updates moto's shadow and publishes status changes to moto's SNS."""

    def __init__(
        self, broker: LocalBroker, cert: CertPair, endpoint_url: str, region: str, status_topic_arn: str
    ) -> None:
        self.status_topic_arn = status_topic_arn
        self.pushed = 0
        self._endpoint_url = endpoint_url
        self._region = region
        self._pending: set[asyncio.Task[None]] = set()
        settings = ClientSettings(
            client_id=RULES_CLIENT_ID,
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

    def _on_state(self, _client: MqttClient, state: ConnectionState) -> None:
        logger.debug("local status rule client is %s", state)

    def _on_message(self, message: InboundMessage) -> None:
        thing = message.topic.split("/")[2]
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._apply, thing, message.payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _apply(self, thing: str, payload: bytes) -> None:
        try:
            update = json.loads(payload)
        except ValueError:
            logger.warning("shadow update of %s is not JSON; ignored as AWS's rule would", thing)
            return
        try:
            self._update_and_push(thing, update)
        except ClientError as exc:  # AWS's rule would send this to its error action
            logger.warning("status rule for %s failed: %s", thing, exc)

    def _update_and_push(self, thing: str, update: dict[str, Any]) -> None:
        data = boto3.client("iot-data", endpoint_url=self._endpoint_url, region_name=self._region)
        previous: dict[str, Any] = {}
        with contextlib.suppress(ClientError):
            previous = json.loads(data.get_thing_shadow(thingName=thing)["payload"].read())
        data.update_thing_shadow(thingName=thing, payload=json.dumps(update).encode())
        current = json.loads(data.get_thing_shadow(thingName=thing)["payload"].read())
        before, after = connected_flag(previous), connected_flag(current)
        if after is None or before == after:
            return
        document = {"previous": previous, "current": current, "timestamp": int(time.time()), "thingName": thing}
        sns = boto3.client("sns", endpoint_url=self._endpoint_url, region_name=self._region)
        sns.publish(TopicArn=self.status_topic_arn, Message=json.dumps(document))
        self.pushed += 1

    async def start(self, opened_timeout_secs: float = OPENED_TIMEOUT_SECS) -> None:
        await self._client.start()
        deadline = time.monotonic() + opened_timeout_secs
        while self._client.state is not ConnectionState.OPENED:
            if time.monotonic() > deadline:
                raise MqttError(f"the local status rule is {self._client.state} after {opened_timeout_secs:g}s")
            await asyncio.sleep(POLL_SECS)
        await self._client.subscribe(SHADOW_UPDATE_FILTER)

    async def stop(self) -> None:
        await self._client.stop()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
