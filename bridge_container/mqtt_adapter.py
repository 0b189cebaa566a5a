"""The only module that touches awscrt/awsiot: MQTT 5 clients for the pool, bridged into asyncio.

CRT calls back on its own event-loop threads. Lifecycle events and inbound messages are handed to the asyncio
loop with ``loop.call_soon_threadsafe``; awaited operations (subscribe, control publishes) use
``asyncio.wrap_future``. Uplink publishes take a cheaper path, :meth:`CrtMqttClient.publish_nowait`: the caller
gives a completion callback that runs on the CRT thread, so no message costs a wake-up of the asyncio loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import awscrt
import awscrt.auth
import awscrt.exceptions
import awscrt.mqtt5 as mqtt5
from awsiot import mqtt5_client_builder

from bridge_container.exceptions import PublishError, SubscribeError
from bridge_container.states import ConnectionState
from bridge_domain.connection import ConnectionConfiguration
from bridge_domain.naming import client_id as make_client_id
from bridge_domain.secrets import reveal

logger = logging.getLogger(__name__)

OPERATION_TIMEOUT_SECS: Final = 10.0
STOP_TIMEOUT_SECS: Final = 5.0
# CRT fails a PINGREQ after this long; keepalive must exceed it (AWS IoT's minimum keepalive is 30 s).
PING_TIMEOUT_MS: Final = 10_000
CONNACK_TIMEOUT_MS: Final = 10_000
IOT_SIGNING_SERVICE: Final = "iotdevicegateway"

# The native publish call skips awscrt's per-message concurrent Future and two dataclasses (about 4x less CPU per
# message, measured); its argument order is that of the pinned awscrt. Any other version uses the public API.
_NATIVE_PUBLISH_VERSION: Final = "0.36.1"

_NOT_STARTED_CODE: Final = 3  # AWS_ERROR_UNKNOWN: the client was never started or is stopped

CompletionCallback = Callable[[int], None]
"""Receives 0 when a QoS 0 publish was written to the socket, else an awscrt error code; runs on a CRT thread."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message received on a subscription."""

    topic: str
    payload: bytes


class MqttClient(Protocol):
    """One MQTT 5 connection of the pool."""

    client_id: str

    @property
    def state(self) -> ConnectionState: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, topic: str, payload: bytes) -> None: ...

    async def subscribe(self, topic_filter: str) -> None: ...

    def publish_nowait(self, topic: str, payload: bytes, on_done: CompletionCallback) -> None: ...


@dataclass(frozen=True, slots=True)
class ClientCallbacks:
    """What a client reports, always on the asyncio loop."""

    on_state: Callable[[MqttClient, ConnectionState], None]
    on_message: Callable[[InboundMessage], None]


class ClientFactory(Protocol):
    """Builds the client of one pool slot."""

    def __call__(self, slot: int, callbacks: ClientCallbacks) -> MqttClient: ...


@dataclass(frozen=True, slots=True)
class ReconnectSettings:
    """Capped exponential reconnect backoff; each client draws its own base so clients do not reconnect in step.

    AWS IoT allows one connect per second per client ID, so the base is never below 1 s. (CRT's own jitter modes
    can return 0 ms, so the jitter is applied here, to the base, and CRT runs without jitter.)
    """

    min_delay_secs: float = 1.0
    jitter_secs: float = 1.0
    max_delay_secs: float = 60.0

    def __post_init__(self) -> None:
        if self.min_delay_secs < 1.0 or self.jitter_secs < 0 or self.max_delay_secs < self.min_delay_secs:
            raise ValueError("reconnect delays: min >= 1 s, jitter >= 0, max >= min")


@dataclass(frozen=True, slots=True, repr=False)
class ClientSettings:
    """Everything one client needs to connect, derived from a connection's configuration."""

    client_id: str
    endpoint: str
    port: int
    protocol: Literal["SSL", "WSS"]
    region: str
    keep_alive_secs: int
    ca_pem: bytes | None = None
    certificate_pem: bytes | None = None
    private_key_pem: bytes | None = None
    sign_websocket: bool = True
    access_key_id: str | None = None
    secret_access_key: str | None = None
    wss_path: str = "/mqtt"
    reconnect: ReconnectSettings = field(default_factory=ReconnectSettings)

    def __repr__(self) -> str:  # the key and secret stay out of logs and tracebacks
        return f"ClientSettings(client_id={self.client_id!r}, endpoint={self.endpoint!r}, port={self.port})"


def client_settings(
    config: ConnectionConfiguration, task_id: str, slot: int, reconnect: ReconnectSettings | None = None
) -> ClientSettings:
    """The settings of pool slot ``slot`` (secrets must already be resolved from Secrets Manager)."""
    endpoint = config.endpoint
    if endpoint is None:
        raise ValueError("the connection has no endpoint: set configuration.accountPrefix or configuration.broker")
    broker = config.broker
    cert, key = reveal(config.certificate), reveal(config.private_key)
    secret = reveal(config.secret_access_key)
    return ClientSettings(
        client_id=make_client_id(config.client_id_prefix, task_id, slot),
        endpoint=endpoint,
        port=config.port,
        protocol=config.protocol,
        region=config.region,
        keep_alive_secs=config.keep_alive_secs,
        ca_pem=broker.ca_certificate.encode() if broker is not None and broker.ca_certificate else None,
        certificate_pem=cert.encode() if cert else None,
        private_key_pem=key.encode() if key else None,
        sign_websocket=broker.use_sigv4 if broker is not None else True,
        access_key_id=config.access_key_id,
        secret_access_key=secret,
        wss_path=broker.wss_path if broker is not None else "/mqtt",
        reconnect=reconnect or ReconnectSettings(),
    )


# awscrt error names that mean the peer refused who we are (certificate, CA, credentials, policy).
_AUTH_ERROR_PREFIXES = ("AWS_IO_TLS_", "AWS_ERROR_HTTP_WEBSOCKET_UPGRADE_FAILURE", "AWS_ERROR_AUTH_")
_AUTH_CONNACK_CODES = frozenset(
    {
        mqtt5.ConnectReasonCode.BAD_USERNAME_OR_PASSWORD,
        mqtt5.ConnectReasonCode.NOT_AUTHORIZED,
        mqtt5.ConnectReasonCode.BANNED,
        mqtt5.ConnectReasonCode.BAD_AUTHENTICATION_METHOD,
        mqtt5.ConnectReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
    }
)
_UNREACHABLE_ERROR_MARKERS = ("CONNECTION_REFUSED", "TIMEOUT", "NO_ROUTE", "NETWORK_DOWN", "DNS", "HOST")


def classify_failure(error_name: str, connack_reason: int | None) -> ConnectionState:
    """Map a failed connection attempt to AUTHENTICATION_FAILED, UNREACHABLE or CLOSED."""
    if connack_reason is not None and connack_reason in _AUTH_CONNACK_CODES:
        return ConnectionState.AUTHENTICATION_FAILED
    if error_name.startswith(_AUTH_ERROR_PREFIXES):
        return ConnectionState.AUTHENTICATION_FAILED
    if error_name.startswith("AWS_IO_") and any(marker in error_name for marker in _UNREACHABLE_ERROR_MARKERS):
        return ConnectionState.UNREACHABLE
    return ConnectionState.CLOSED


def error_name(error_code: int) -> str:
    """awscrt's symbolic name for an error code (``AWS_ERROR_MQTT5_...``)."""
    exc = awscrt.exceptions.from_code(error_code)
    return str(getattr(exc, "name", type(exc).__name__))


def _native_publisher() -> Callable[..., None] | None:
    if awscrt.__version__ != _NATIVE_PUBLISH_VERSION:
        return None
    try:  # the private binding, used only with the version whose argument order is known
        import _awscrt  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - every awscrt wheel has it
        return None
    publish: Callable[..., None] | None = getattr(_awscrt, "mqtt5_client_publish", None)
    return publish


_NATIVE_PUBLISH = _native_publisher()
_QOS0 = mqtt5.QoS.AT_MOST_ONCE


class CrtMqttClient:
    """An awscrt MQTT 5 client with reconnects, state tracking and asyncio bridging."""

    def __init__(
        self,
        settings: ClientSettings,
        callbacks: ClientCallbacks,
        *,
        use_native_publish: bool = True,
    ) -> None:
        self.client_id = settings.client_id
        self._settings = settings
        self._callbacks = callbacks
        self._state = ConnectionState.DEACTIVATED
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._stopped: asyncio.Event | None = None
        self._native = _NATIVE_PUBLISH if use_native_publish else None
        self._binding: Any = None
        self._last_failure: tuple[ConnectionState, str] | None = None

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def uses_native_publish(self) -> bool:
        return self._native is not None

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Begin connecting; returns at once (CRT reconnects by itself until :meth:`stop`)."""
        if self._client is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._client = self._build()
        self._binding = self._client._binding
        self._set_state(ConnectionState.OPENING)
        self._client.start()

    async def stop(self) -> None:
        """Disconnect and stop reconnecting; waits (bounded) for CRT to confirm."""
        client, stopped = self._client, self._stopped
        if client is None or stopped is None:
            self._set_state(ConnectionState.DEACTIVATED)
            return
        client.stop()
        try:
            await asyncio.wait_for(stopped.wait(), STOP_TIMEOUT_SECS)
        except TimeoutError:
            logger.warning("MQTT client %s did not confirm its stop within %ss", self.client_id, STOP_TIMEOUT_SECS)
        self._client = None
        self._binding = None
        self._set_state(ConnectionState.DEACTIVATED)

    # --- operations ------------------------------------------------------------------------------------------
    def publish_nowait(self, topic: str, payload: bytes, on_done: CompletionCallback) -> None:
        """QoS 0 publish; ``on_done(error_code)`` runs on a CRT thread once written (0) or failed."""
        binding = self._binding
        if binding is None:
            on_done(_NOT_STARTED_CODE)
            return
        native = self._native
        if native is not None:

            def puback(error_code: int, _qos: int, _reason: int, _text: Any, _props: Any) -> None:
                on_done(error_code)

            native(binding, _QOS0, payload, False, topic, None, None, None, None, None, None, None, puback)
            return
        future = self._client.publish(mqtt5.PublishPacket(topic=topic, payload=payload, qos=_QOS0))
        future.add_done_callback(lambda done: on_done(_error_code(done.exception())))

    async def publish(self, topic: str, payload: bytes) -> None:
        """QoS 0 publish awaited until written; raises :class:`PublishError`."""
        if self._client is None:
            raise PublishError(f"client {self.client_id} is not started")
        future = self._client.publish(mqtt5.PublishPacket(topic=topic, payload=payload, qos=_QOS0))
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), OPERATION_TIMEOUT_SECS)
        except TimeoutError as exc:
            raise PublishError(f"publish on {self.client_id} timed out") from exc
        except awscrt.exceptions.AwsCrtError as exc:
            raise PublishError(f"publish on {self.client_id} failed: {exc.name}") from exc

    async def subscribe(self, topic_filter: str) -> None:
        """QoS 1 subscription; raises :class:`SubscribeError` when refused, failed or timed out."""
        if self._client is None:
            raise SubscribeError(f"client {self.client_id} is not started")
        packet = mqtt5.SubscribePacket(subscriptions=[mqtt5.Subscription(topic_filter, qos=mqtt5.QoS.AT_LEAST_ONCE)])
        future = self._client.subscribe(packet)
        try:
            suback = await asyncio.wait_for(asyncio.wrap_future(future), OPERATION_TIMEOUT_SECS)
        except TimeoutError as exc:
            raise SubscribeError(f"subscribe {topic_filter} on {self.client_id} timed out") from exc
        except awscrt.exceptions.AwsCrtError as exc:
            raise SubscribeError(f"subscribe {topic_filter} on {self.client_id} failed: {exc.name}") from exc
        codes = [code for code in suback.reason_codes if code is None or int(code) >= 0x80]
        if codes:
            raise SubscribeError(f"subscribe {topic_filter} refused by the broker: {codes[0]!s}")

    # --- CRT construction and callbacks (CRT threads) ----------------------------------------------------------
    def _build(self) -> Any:
        settings = self._settings
        reconnect = settings.reconnect
        base_ms = int((reconnect.min_delay_secs + random.uniform(0.0, reconnect.jitter_secs)) * 1000)  # noqa: S311
        common: dict[str, Any] = {
            "endpoint": settings.endpoint,
            "port": settings.port,
            "client_id": settings.client_id,
            "keep_alive_interval_sec": settings.keep_alive_secs,
            "ping_timeout_ms": PING_TIMEOUT_MS,
            "connack_timeout_ms": CONNACK_TIMEOUT_MS,
            "session_behavior": mqtt5.ClientSessionBehaviorType.CLEAN,
            # Our limiter holds the 100 publishes/s and 512 KiB/s per connection; CRT's own throttle would hide
            # a second, unbounded queue behind it.
            "extended_validation_and_flow_control_options": mqtt5.ExtendedValidationAndFlowControlOptions.NONE,
            "offline_queue_behavior": mqtt5.ClientOperationQueueBehaviorType.FAIL_ALL_ON_DISCONNECT,
            "retry_jitter_mode": mqtt5.ExponentialBackoffJitterMode.NONE,
            "min_reconnect_delay_ms": base_ms,
            "max_reconnect_delay_ms": int(max(reconnect.max_delay_secs * 1000, base_ms)),
            "on_publish_received": self._on_publish_received,
            "on_lifecycle_stopped": self._on_stopped,
            "on_lifecycle_attempting_connect": self._on_attempting_connect,
            "on_lifecycle_connection_success": self._on_connection_success,
            "on_lifecycle_connection_failure": self._on_connection_failure,
            "on_lifecycle_disconnection": self._on_disconnection,
        }
        if settings.ca_pem is not None:
            common["ca_bytes"] = settings.ca_pem
        if settings.protocol == "SSL":
            if settings.certificate_pem is None or settings.private_key_pem is None:
                raise ValueError("SSL needs the certificate and private key (resolved)")
            return mqtt5_client_builder.mtls_from_bytes(settings.certificate_pem, settings.private_key_pem, **common)
        return mqtt5_client_builder.websockets_with_custom_handshake(self._websocket_transform(), **common)

    def _websocket_transform(self) -> Callable[..., None]:
        settings = self._settings
        provider = None
        if settings.sign_websocket:
            if settings.access_key_id and settings.secret_access_key:
                provider = awscrt.auth.AwsCredentialsProvider.new_static(
                    settings.access_key_id, settings.secret_access_key
                )
            else:  # the task role inside the customer's own account
                provider = awscrt.auth.AwsCredentialsProvider.new_default_chain()

        def transform(transform_args: Any, **_kwargs: Any) -> None:
            self._post_state(ConnectionState.AUTHENTICATING, None)
            request = transform_args.http_request
            request.path = settings.wss_path
            if provider is None:
                transform_args.set_done()
                return
            try:
                signing_config = awscrt.auth.AwsSigningConfig(
                    algorithm=awscrt.auth.AwsSigningAlgorithm.V4,
                    signature_type=awscrt.auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
                    credentials_provider=provider,
                    region=settings.region,
                    service=IOT_SIGNING_SERVICE,
                    omit_session_token=True,  # AWS IoT expects the token appended unsigned
                )
                signing = awscrt.auth.aws_sign_request(request, signing_config)
                signing.add_done_callback(lambda done: transform_args.set_done(done.exception()))
            except Exception as exc:  # CRT must always be told that the transform ended
                transform_args.set_done(exc)

        return transform

    def _post_state(self, state: ConnectionState, failure: tuple[ConnectionState, str] | None) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._apply_state, state, failure)

    def _on_publish_received(self, data: Any) -> None:
        packet = data.publish_packet
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(
                self._callbacks.on_message, InboundMessage(packet.topic, bytes(packet.payload or b""))
            )

    def _on_stopped(self, _data: Any) -> None:
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopped.set)

    def _on_attempting_connect(self, _data: Any) -> None:
        self._post_state(ConnectionState.OPENING, None)

    def _on_connection_success(self, _data: Any) -> None:
        self._post_state(ConnectionState.OPENED, None)

    def _on_connection_failure(self, data: Any) -> None:
        name = getattr(data.exception, "name", type(data.exception).__name__)
        connack = data.connack_packet
        reason = int(connack.reason_code) if connack is not None and connack.reason_code is not None else None
        state = classify_failure(name, reason)
        detail = name if reason is None else f"{name} (CONNACK {mqtt5.ConnectReasonCode(reason).name})"
        self._post_state(state, (state, detail))

    def _on_disconnection(self, data: Any) -> None:
        name = getattr(data.exception, "name", "")
        if name == "AWS_ERROR_MQTT5_USER_REQUESTED_STOP":
            return
        packet = data.disconnect_packet
        detail = name if packet is None else f"{name} (DISCONNECT {packet.reason_code!s})"
        self._post_state(ConnectionState.CLOSED, (ConnectionState.CLOSED, detail))

    # --- state (asyncio loop) --------------------------------------------------------------------------------
    def _apply_state(self, state: ConnectionState, failure: tuple[ConnectionState, str] | None) -> None:
        if self._client is None and state is not ConnectionState.DEACTIVATED:
            return  # a late CRT event after stop()
        previous = self._state
        if state in (ConnectionState.OPENING, ConnectionState.AUTHENTICATING) and previous in (
            ConnectionState.AUTHENTICATION_FAILED,
            ConnectionState.UNREACHABLE,
        ):
            return  # a retry in backoff: keep reporting why the last attempt failed
        if failure is not None:
            if failure != self._last_failure:
                # One line per distinct failure: a retry that fails the same way stays quiet.
                log = logger.error if state is ConnectionState.AUTHENTICATION_FAILED else logger.warning
                log(
                    "MQTT client %s to %s:%s: %s (%s); retrying with backoff",
                    self.client_id,
                    self._settings.endpoint,
                    self._settings.port,
                    state.value,
                    failure[1],
                )
            self._last_failure = failure
        elif state is ConnectionState.OPENED:
            if self._last_failure is not None or previous is not ConnectionState.OPENED:
                logger.info(
                    "MQTT client %s OPENED to %s:%s", self.client_id, self._settings.endpoint, self._settings.port
                )
            self._last_failure = None
        self._set_state(state)

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        self._state = state
        self._callbacks.on_state(self, state)


def _error_code(exc: BaseException | None) -> int:
    if exc is None:
        return 0
    return int(getattr(exc, "code", _NOT_STARTED_CODE))


class CrtClientFactory:
    """Builds one :class:`CrtMqttClient` per pool slot from a connection's configuration."""

    def __init__(
        self,
        config: ConnectionConfiguration,
        task_id: str,
        *,
        reconnect: ReconnectSettings | None = None,
        use_native_publish: bool = True,
    ) -> None:
        self._config = config
        self._task_id = task_id
        self._reconnect = reconnect
        self._use_native_publish = use_native_publish

    def __call__(self, slot: int, callbacks: ClientCallbacks) -> MqttClient:
        settings = client_settings(self._config, self._task_id, slot, self._reconnect)
        return CrtMqttClient(settings, callbacks, use_native_publish=self._use_native_publish)
