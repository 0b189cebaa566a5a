"""The MQTT port: what the pool, the downlink path and the tools need from an MQTT 5 client (no awscrt here).

Threading contract: :class:`ClientCallbacks` always run on the asyncio loop; a :data:`CompletionCallback` given to
:meth:`MqttClient.publish_nowait` runs on the adapter's own I/O thread, so it must only do thread-safe work
(append to a deque) and never touch the loop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple, Protocol

from bridge_container.states import ConnectionState
from bridge_domain.connection import ConnectionConfiguration
from bridge_domain.naming import client_id as make_client_id
from bridge_domain.secrets import reveal

CompletionCallback = Callable[[str | None], None]
"""The outcome of one publish. QoS 0: ``None`` once written to the socket (not a receipt: QoS 0 has none). QoS 1:
``None`` once the broker's PUBACK reported success. Else the name of the failure: ``PUBACK_<REASON>`` when a PUBACK
carried a failure reason code (:data:`PUBACK_FAILURE_PREFIX`), the adapter's error name (``AWS_ERROR_MQTT5_...``)
when the publish never completed. Runs on the adapter's I/O thread, exactly once per publish."""

PUBACK_FAILURE_PREFIX: Final = "PUBACK_"
"""Prefix of a failure the broker reported in a PUBACK reason code (``PUBACK_QUOTA_EXCEEDED``)."""


class UserProperty(NamedTuple):
    """One MQTT 5 user property. A named tuple: awscrt reads ``name`` and ``value``, and it costs no class call."""

    name: str
    value: str


UserProperties = tuple[UserProperty, ...]
"""The user properties of one publish, in the order they are sent."""

new_user_property: Callable[[tuple[str, str]], UserProperty] = functools.partial(tuple.__new__, UserProperty)
"""``new_user_property((name, value))``: a :class:`UserProperty` without the named tuple's Python-level ``__new__``
(about a third of its cost), for what is built per message."""

NOT_STARTED: Literal["AWS_ERROR_UNKNOWN"] = "AWS_ERROR_UNKNOWN"
"""The failure name of a publish asked of a client that is not started (or already stopped)."""


def _nothing_to_acknowledge() -> None:
    return None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message received on a subscription.

    A QoS 1 message received on a client that keeps its session is acknowledged (PUBACK) only when its handler
    calls :attr:`acknowledge`, once it is done with it: until then the broker keeps it, and delivers it again if
    the connection drops. For any other message :attr:`acknowledge` does nothing.
    """

    topic: str
    payload: bytes
    user_properties: tuple[tuple[str, str], ...] = ()
    expiry_secs: int | None = None
    """MQTT 5 message expiry interval: the seconds the message had left when the broker delivered it."""
    acknowledge: Callable[[], None] = _nothing_to_acknowledge

    def user_property(self, name: str) -> str | None:
        """The value of the first MQTT 5 user property called ``name``."""
        return next((value for key, value in self.user_properties if key == name), None)


class MqttClient(Protocol):
    """One MQTT 5 connection of a pool."""

    client_id: str
    keeps_session: bool
    """True for a client whose session (its subscriptions and the QoS 1 messages for it) outlives a disconnect."""

    @property
    def state(self) -> ConnectionState: ...

    @property
    def last_error(self) -> str | None:
        """Why the last connection attempt failed or the connection dropped; None once OPENED again."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, topic: str, payload: bytes) -> None:
        """QoS 0, awaited until written; raises :class:`~bridge_container.exceptions.PublishError`."""
        ...

    async def subscribe(self, topic_filter: str) -> None:
        """QoS 1; raises :class:`~bridge_container.exceptions.SubscribeError`."""
        ...

    @property
    def failure_name(self) -> str | None:
        """Why the connection last failed or dropped (an error name), None while it has not."""
        ...

    def publish_nowait(
        self,
        topic: str,
        payload: bytes,
        on_done: CompletionCallback,
        properties: UserProperties | None = None,
        qos: int = 0,
    ) -> None:
        """QoS 0 or 1 without waiting; ``on_done`` reports the outcome (see :data:`CompletionCallback`)."""
        ...


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
    can return 0 ms, so the jitter is applied by the adapter, to the base, and CRT runs without jitter.)
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
    session_token: str | None = None  # temporary credentials (an operator's session), appended after signing
    wss_path: str = "/mqtt"
    reconnect: ReconnectSettings = field(default_factory=ReconnectSettings)
    # 0: a clean session at every connect; else the MQTT 5 session expiry, and the session is resumed.
    session_expiry_secs: int = 0

    def __repr__(self) -> str:  # the key and secret stay out of logs and tracebacks
        return f"ClientSettings(client_id={self.client_id!r}, endpoint={self.endpoint!r}, port={self.port})"


def client_settings(
    config: ConnectionConfiguration, task_id: str, slot: int, reconnect: ReconnectSettings | None = None
) -> ClientSettings:
    """The settings of pool slot ``slot`` (secrets must already be resolved from Secrets Manager).

    The slots that hold the downlink subscription keep their sessions for ``downlinkSessionExpirySecs``; the
    uplink-only slots start clean.
    """
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
        session_expiry_secs=session_expiry_secs(config, slot),
    )


def session_expiry_secs(config: ConnectionConfiguration, slot: int) -> int:
    """The session expiry of pool slot ``slot``: the configured one on a downlink subscriber, else 0 (clean)."""
    if not config.downlink_enabled or slot not in config.budget.subscriber_slots:
        return 0
    return config.downlink_session_expiry_secs
