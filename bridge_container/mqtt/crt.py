"""The only module that touches awscrt/awsiot: the MQTT port's adapter, CRT bridged into asyncio.

CRT calls back on its own event-loop threads. Lifecycle events and inbound messages are handed to the asyncio
loop with ``loop.call_soon_threadsafe``; awaited operations (subscribe, control publishes) use
``asyncio.wrap_future``. Uplink publishes take a cheaper path, :meth:`CrtMqttClient.publish_nowait`: the caller
gives a completion callback that runs on the CRT thread, so no message costs a wake-up of the asyncio loop.
Every private part of awscrt is obtained in :func:`fast_publisher`, behind one version guard; ``publish_nowait``
calls it only when the guard handed it over.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable
from typing import Any, Final, NamedTuple

import awscrt
import awscrt.auth
import awscrt.exceptions
import awscrt.mqtt5 as mqtt5
from awsiot import mqtt5_client_builder

from bridge_container.exceptions import PublishError, SubscribeError
from bridge_container.mqtt.connects import ConnectPacer
from bridge_container.mqtt.port import (
    NOT_STARTED,
    PUBACK_FAILURE_PREFIX,
    ClientCallbacks,
    ClientSettings,
    CompletionCallback,
    InboundMessage,
    MqttClient,
    ReconnectSettings,
    UserProperties,
    client_settings,
)
from bridge_container.states import STATE_HINTS, ConnectionState
from bridge_domain.connection import ConnectionConfiguration

logger = logging.getLogger(__name__)

OPERATION_TIMEOUT_SECS: Final = 10.0
STOP_TIMEOUT_SECS: Final = 5.0
# CRT fails a PINGREQ after this long; keepalive must exceed it (AWS IoT's minimum keepalive is 30 s).
PING_TIMEOUT_MS: Final = 10_000
CONNACK_TIMEOUT_MS: Final = 10_000
IOT_SIGNING_SERVICE: Final = "iotdevicegateway"

# The native publish call skips awscrt's per-message concurrent Future and two dataclasses (about 4x less CPU per
# message, measured); its argument order is that of this awscrt release (pinned in requirements.txt, checked by
# tests/unit/mqtt/test_crt_guard.py). Any other version uses the public API.
FAST_PATH_AWSCRT_VERSION: Final = "0.36.1"

_QOS0 = mqtt5.QoS.AT_MOST_ONCE
# PUBACK reason codes from 0x80 up are failures (OASIS MQTT 5.0, 3.4.2.1); AWS IoT sends 0x97 over its rate limit.
_PUBACK_FAILURE_FROM: Final = 0x80


class FastPath(NamedTuple):
    """awscrt's native publish function and the client's native binding, to be called as ``native(binding, ...)``."""

    native: Callable[..., None]
    binding: Any


def fast_publisher(client: Any, version: str | None = None) -> FastPath | None:
    """CRT's native QoS 0 publish for ``client``, or None: the public API is used then.

    The one guarded place for awscrt's private parts (``_awscrt.mqtt5_client_publish`` and ``client._binding``):
    used only with the awscrt version whose argument order is known, and only if both exist. The pair is bound
    once, when a client starts, so that :meth:`CrtMqttClient.publish_nowait` calls the native function itself:
    a wrapper function would cost one more Python call per uplink.
    """
    if (version or awscrt.__version__) != FAST_PATH_AWSCRT_VERSION:
        return None
    try:
        import _awscrt  # type: ignore[import-not-found]

        native: Callable[..., None] = _awscrt.mqtt5_client_publish
        binding = client._binding
    except (ImportError, AttributeError):
        return None
    return FastPath(native, binding)


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


class CrtMqttClient:
    """An awscrt MQTT 5 client with reconnects, state tracking and asyncio bridging."""

    def __init__(
        self,
        settings: ClientSettings,
        callbacks: ClientCallbacks,
        *,
        use_native_publish: bool = True,
        connects: ConnectPacer | None = None,
        end_session_on_stop: bool = True,
    ) -> None:
        self.client_id = settings.client_id
        self.keeps_session = settings.session_expiry_secs > 0
        self._end_session_on_stop = end_session_on_stop
        self._connects = connects
        self._settings = settings
        self._callbacks = callbacks
        self._state = ConnectionState.DEACTIVATED
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._stopped: asyncio.Event | None = None
        self._use_native_publish = use_native_publish
        # Chosen at start, when the CRT client exists: the native publish and its binding, or None (public API).
        self._native: Callable[..., None] | None = None
        self._binding: Any = None
        self._last_failure: tuple[ConnectionState, str] | None = None
        # Set on a CRT thread before the state change is posted, so the loop sees it with the state.
        self._failure_name: str | None = None

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def failure_name(self) -> str | None:
        return self._failure_name

    @property
    def last_error(self) -> str | None:
        failure = self._last_failure
        if failure is None:
            return None
        state, detail = failure
        return f"{STATE_HINTS[state]} ({detail}) at {self._settings.endpoint}:{self._settings.port}"

    @property
    def uses_native_publish(self) -> bool:
        return self._native is not None

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Begin connecting; returns at once (CRT reconnects by itself until :meth:`stop`)."""
        if self._client is not None:
            return
        if self._connects is not None:
            await self._connects.before_connect(self.client_id)
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._client = self._build()
        fast_path = fast_publisher(self._client) if self._use_native_publish else None
        if fast_path is not None:
            self._native, self._binding = fast_path
        self._set_state(ConnectionState.OPENING)
        self._client.start()

    async def stop(self) -> None:
        """Disconnect and stop reconnecting; waits (bounded) for CRT to confirm."""
        client, stopped = self._client, self._stopped
        if client is None or stopped is None:
            self._set_state(ConnectionState.DEACTIVATED)
            return
        if self.keeps_session and self._end_session_on_stop:
            # Nobody resumes this session (the next task has other client IDs): end it, so that the broker does not
            # hand it a share of the downlinks to keep until it expires.
            client.stop(mqtt5.DisconnectPacket(session_expiry_interval_sec=0))
        else:
            client.stop()
        try:
            await asyncio.wait_for(stopped.wait(), STOP_TIMEOUT_SECS)
        except TimeoutError:
            logger.warning("MQTT client %s did not confirm its stop within %ss", self.client_id, STOP_TIMEOUT_SECS)
        self._client = None
        self._native = self._binding = None
        if self._connects is not None:
            self._connects.record(self.client_id)  # it may have reconnected a moment ago
        self._set_state(ConnectionState.DEACTIVATED)

    # --- operations ------------------------------------------------------------------------------------------
    def publish_nowait(
        self,
        topic: str,
        payload: bytes,
        on_done: CompletionCallback,
        properties: UserProperties | None = None,
        qos: int = 0,
    ) -> None:
        """QoS 0 or 1 publish; ``on_done(failure)`` runs on a CRT thread (see :data:`CompletionCallback`)."""
        client = self._client
        if client is None:
            on_done(NOT_STARTED)
            return
        native = self._native
        if native is not None:

            def puback(error_code: int, acked_qos: int, reason: int, _text: Any, _props: Any) -> None:
                if error_code:
                    on_done(error_name(error_code))
                elif acked_qos and reason >= _PUBACK_FAILURE_FROM:  # QoS 0 has no PUBACK, hence no reason
                    on_done(puback_failure(reason))
                else:
                    on_done(None)

            # The argument order of FAST_PATH_AWSCRT_VERSION's _awscrt.mqtt5_client_publish (see fast_publisher);
            # the user properties are named tuples, read by name and value like awscrt's UserProperty.
            native(self._binding, qos, payload, False, topic, None, None, None, None, None, None, properties, puback)
            return
        packet = mqtt5.PublishPacket(
            topic=topic, payload=payload, qos=mqtt5.QoS(qos), user_properties=list(properties or ())
        )
        client.publish(packet).add_done_callback(lambda done: on_done(_publish_outcome(done)))

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
            # A downlink subscriber resumes its session, also at its first connect (a restarted task with the same
            # client IDs gets the downlinks published meanwhile); the uplink-only clients start clean.
            "session_behavior": mqtt5.ClientSessionBehaviorType.REJOIN_ALWAYS
            if self.keeps_session
            else mqtt5.ClientSessionBehaviorType.CLEAN,
            "session_expiry_interval_sec": settings.session_expiry_secs,
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
                    settings.access_key_id, settings.secret_access_key, settings.session_token
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
        if loop is None or loop.is_closed():
            return
        properties = tuple((prop.name, prop.value) for prop in packet.user_properties or ())
        message = InboundMessage(
            packet.topic,
            bytes(packet.payload or b""),
            properties,
            packet.message_expiry_interval_sec,
        )
        acquire = data.acquire_publish_acknowledgement_control
        if self.keeps_session and acquire is not None:
            # QoS 1 on a persistent session: PUBACK when the handler is done, not on receipt (CRT's default), so a
            # downlink the bridge had not finished is delivered again after a reconnect or a restart.
            message = dataclasses.replace(message, acknowledge=self._acknowledger(acquire()))
        loop.call_soon_threadsafe(self._callbacks.on_message, message)

    def _acknowledger(self, handle: Any) -> Callable[[], None]:
        client = self._client
        acknowledged = False

        def acknowledge() -> None:
            nonlocal acknowledged
            if acknowledged or client is None or client is not self._client:
                return  # once; a client stopped since then has no connection to acknowledge on
            acknowledged = True
            try:
                client.invoke_publish_acknowledgement(handle)
            except Exception as exc:  # the connection dropped since: the broker delivers it again
                logger.debug("PUBACK on %s not sent: %s", self.client_id, exc)

        return acknowledge

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
        self._failure_name = name
        state = classify_failure(name, reason)
        detail = name if reason is None else f"{name} (CONNACK {mqtt5.ConnectReasonCode(reason).name})"
        self._post_state(state, (state, detail))

    def _on_disconnection(self, data: Any) -> None:
        name = getattr(data.exception, "name", "")
        if name == "AWS_ERROR_MQTT5_USER_REQUESTED_STOP":
            return
        packet = data.disconnect_packet
        detail = name if packet is None else f"{name} (DISCONNECT {packet.reason_code!s})"
        # A server DISCONNECT says why (DISCONNECT_SESSION_TAKEN_OVER); else CRT's error (AWS_IO_SOCKET_CLOSED).
        self._failure_name = (
            name if packet is None or packet.reason_code is None else f"DISCONNECT_{packet.reason_code.name}"
        ) or "UNKNOWN"
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


def puback_failure(reason: int) -> str:
    """The failure name of a PUBACK reason code: ``PUBACK_QUOTA_EXCEEDED`` (an unknown code in hex)."""
    try:
        return PUBACK_FAILURE_PREFIX + str(mqtt5.PubackReasonCode(reason).name)
    except ValueError:
        return f"{PUBACK_FAILURE_PREFIX}0x{reason:02X}"


def _publish_outcome(done: Any) -> str | None:
    """The failure name of a completed public-API publish future, None for success."""
    exc = done.exception()
    if exc is not None:
        return str(getattr(exc, "name", type(exc).__name__))
    puback = getattr(done.result(), "puback", None)
    reason = getattr(puback, "reason_code", None)
    if reason is not None and int(reason) >= _PUBACK_FAILURE_FROM:
        return puback_failure(int(reason))
    return None


class CrtClientFactory:
    """Builds one :class:`CrtMqttClient` per pool slot from a connection's configuration."""

    def __init__(
        self,
        config: ConnectionConfiguration,
        task_id: str,
        *,
        reconnect: ReconnectSettings | None = None,
        use_native_publish: bool = True,
        connects: ConnectPacer | None = None,
        end_sessions_on_stop: bool = True,
    ) -> None:
        self._config = config
        self._connects = connects
        self._end_sessions_on_stop = end_sessions_on_stop
        self._task_id = task_id
        self._reconnect = reconnect
        self._use_native_publish = use_native_publish

    def __call__(self, slot: int, callbacks: ClientCallbacks) -> MqttClient:
        settings = client_settings(self._config, self._task_id, slot, self._reconnect)
        return CrtMqttClient(
            settings,
            callbacks,
            use_native_publish=self._use_native_publish,
            connects=self._connects,
            end_session_on_stop=self._end_sessions_on_stop,
        )
