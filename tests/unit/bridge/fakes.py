"""In-memory stand-ins for the MQTT port, so pool and ingress logic run without a broker."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge_container.mqtt.port import ClientCallbacks, CompletionCallback, InboundMessage, MqttClient, UserProperties
from bridge_container.states import ConnectionState

WRITE_FAILED = "AWS_IO_SOCKET_CLOSED"  # any failure name


@dataclass
class FakeClient:
    """Records what the pool asks of one client; the test moves its state."""

    client_id: str
    callbacks: ClientCallbacks
    start_state: ConnectionState = ConnectionState.OPENED
    fail_publishes: bool = False
    hold_completions: bool = False  # keep completions until release(), like a CRT thread that lags
    held: list[CompletionCallback] = field(default_factory=list)
    published: list[tuple[str, bytes]] = field(default_factory=list)
    properties: list[UserProperties | None] = field(default_factory=list)  # of each publish, in order
    qos: list[int] = field(default_factory=list)  # of each publish, in order
    failure_name: str | None = None
    control: list[tuple[str, bytes]] = field(default_factory=list)
    subscriptions: list[str] = field(default_factory=list)
    last_error: str | None = None
    keeps_session: bool = False
    _state: ConnectionState = ConnectionState.DEACTIVATED

    @property
    def state(self) -> ConnectionState:
        return self._state

    def move_to(self, state: ConnectionState) -> None:
        self._state = state
        self.callbacks.on_state(self, state)

    async def start(self) -> None:
        self.move_to(self.start_state)

    async def stop(self) -> None:
        self.move_to(ConnectionState.DEACTIVATED)

    async def publish(self, topic: str, payload: bytes) -> None:
        self.control.append((topic, payload))

    async def subscribe(self, topic_filter: str) -> None:
        self.subscriptions.append(topic_filter)

    def publish_nowait(
        self,
        topic: str,
        payload: bytes,
        on_done: CompletionCallback,
        properties: UserProperties | None = None,
        qos: int = 0,
    ) -> None:
        if self.fail_publishes or self._state is not ConnectionState.OPENED:
            on_done(WRITE_FAILED)
            return
        self.published.append((topic, payload))
        self.properties.append(properties)
        self.qos.append(qos)
        if self.hold_completions:
            self.held.append(on_done)
            return
        on_done(None)

    def release(self, failure: str | None = None) -> None:
        """Complete the held publishes, with ``failure`` (a failure name) or as written/acknowledged."""
        held, self.held = self.held, []
        for on_done in held:
            on_done(failure)

    def drop(self, reason: str) -> None:
        """The connection drops for ``reason``, as the adapter reports it."""
        self.failure_name = reason
        self.move_to(ConnectionState.CLOSED)

    def deliver(self, topic: str, payload: bytes) -> None:
        self.callbacks.on_message(InboundMessage(topic, payload))


@dataclass
class FakeFactory:
    """Builds FakeClients and keeps them for the test to inspect."""

    start_states: dict[int, ConnectionState] = field(default_factory=dict)
    clients: list[FakeClient] = field(default_factory=list)

    def __call__(self, slot: int, callbacks: ClientCallbacks) -> MqttClient:
        client = FakeClient(f"test-task-{slot}", callbacks, self.start_states.get(slot, ConnectionState.OPENED))
        self.clients.append(client)
        return client
