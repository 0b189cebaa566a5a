"""The caller's AWS clients and the MQTT 5 client over WSS (SigV4) that watches AWS IoT Core."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from bridge_container.exceptions import MqttError
from bridge_container.mqtt.crt import CrtMqttClient
from bridge_container.mqtt.port import ClientCallbacks, ClientSettings, InboundMessage, MqttClient
from bridge_container.states import ConnectionState
from cli.aws import aws_session
from cli.selftest.target import KEEP_ALIVE_SECS, LOCAL_CREDENTIAL, POLL_SECS, SelfTestError, Target


@dataclass(slots=True)
class Aws:
    """The boto3 clients of the caller's session (moto's endpoint with ``--local``)."""

    session: Any
    endpoint_url: str | None
    iot_data_endpoint: str | None
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        """One client per service, made on first use (boto3 clients are thread-safe)."""
        if service not in self._clients:
            endpoint = self.endpoint_url
            if service == "iot-data" and endpoint is None and self.iot_data_endpoint:
                endpoint = f"https://{self.iot_data_endpoint}"
            self._clients[service] = self.session.client(service, endpoint_url=endpoint)
        return self._clients[service]


def aws_for(target: Target) -> Aws:
    if target.local:
        session = boto3.session.Session(
            aws_access_key_id=LOCAL_CREDENTIAL, aws_secret_access_key=LOCAL_CREDENTIAL, region_name=target.region
        )
    else:
        session = aws_session(target.profile, target.region)
    return Aws(session, target.aws_endpoint_url, target.iot_endpoint)


# --- the MQTT side ----------------------------------------------------------------------------------------------
class Listener:
    """An MQTT 5 client over WSS (SigV4 with the caller's credentials) that keeps what arrives, by topic."""

    def __init__(self, target: Target, aws: Aws) -> None:
        self.messages: list[InboundMessage] = []
        self._local = target.local
        credentials = aws.session.get_credentials()
        if credentials is None:
            raise SelfTestError(
                "no AWS credentials found", "aws configure / AWS_PROFILE / --profile: the caller's credentials"
            )
        frozen = credentials.get_frozen_credentials()
        settings = ClientSettings(
            client_id=f"aws-iot-bridge-selftest-{secrets.token_hex(4)}",
            endpoint=target.iot_endpoint,
            port=target.iot_port,
            protocol="WSS",
            region=target.region,
            keep_alive_secs=KEEP_ALIVE_SECS,
            ca_pem=target.ca_pem,
            access_key_id=frozen.access_key,
            secret_access_key=frozen.secret_key,
            session_token=frozen.token,
        )
        self.client_id = settings.client_id
        self._client = CrtMqttClient(
            settings, ClientCallbacks(on_state=self._on_state, on_message=self.messages.append)
        )

    def _on_state(self, _client: MqttClient, _state: ConnectionState) -> None:
        return None

    async def connect(self, timeout_secs: float) -> None:
        await self._client.start()
        deadline = time.monotonic() + timeout_secs
        while self._client.state is not ConnectionState.OPENED:
            if time.monotonic() > deadline:
                raise SelfTestError(
                    f"not connected after {timeout_secs:g}s (state {self._client.state})",
                    "that make run is running with this state directory"
                    if self._local
                    else "the IoT endpoint (IotDataEndpoint output), the region, and that the caller may iot:Connect",
                )
            await asyncio.sleep(POLL_SECS)

    async def subscribe(self, topic_filter: str) -> None:
        try:
            await self._client.subscribe(topic_filter)
        except MqttError as exc:
            raise SelfTestError(
                f"subscribe {topic_filter}: {exc}", "the caller may iot:Subscribe and iot:Receive"
            ) from exc

    async def publish(self, topic: str, payload: bytes) -> None:
        try:
            await self._client.publish(topic, payload)
        except MqttError as exc:
            raise SelfTestError(f"publish {topic}: {exc}", "the caller may iot:Publish on that topic") from exc

    async def wait_for(self, accept: Callable[[InboundMessage], bool], timeout_secs: float) -> InboundMessage | None:
        deadline = time.monotonic() + timeout_secs
        seen = 0
        while True:
            for message in self.messages[seen:]:
                if accept(message):
                    return message
            seen = len(self.messages)
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(POLL_SECS)

    async def stop(self) -> None:
        await self._client.stop()
