"""A pool's subscriptions: held on ``holders`` OPENED clients, subscribed again after a reconnect or moved if one drops.

Several holders spread a shared subscription (``$share/<group>/...``) over several connections: the broker hands
each message to one of them, so each connection receives a share of the downlinks, within AWS IoT's publishes per
connection (:mod:`bridge_domain.budget`). The pool learns which clients hold (``on_holders``) to reserve room for
their deliveries. A client that leaves OPENED is no longer counted as holding; the next state change subscribes
every filter again on OPENED clients, the highest slots first.

Clients that keep their session (``keeps_session``, the pool's downlink subscribers) are the only holders once the
pool has any: while one is down the broker keeps its subscription and queues its QoS 1 messages, so the filter is
not moved to a clean-session client (which would receive them now and lose them at its next drop); when it is
back, it subscribes again (a subscription that replaces the same one in a resumed session keeps what was queued).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bridge_container.exceptions import SubscribeError
from bridge_container.mqtt.port import InboundMessage, MqttClient
from bridge_container.states import ConnectionState

logger = logging.getLogger(__name__)

# A resumed session delivers its queued messages as soon as the client connects, which may be before the handler is
# registered; they wait for it, up to this many (beyond, they are acknowledged and dropped, with a warning).
MAX_EARLY_MESSAGES = 10_000

MessageHandler = Callable[[InboundMessage], Awaitable[None]]


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest); a ``$share/<group>/`` prefix is ignored."""
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2]
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels) or (level != "+" and level != topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)


HoldersCallback = Callable[[list[MqttClient]], None]


def _ignore_holders(_holders: list[MqttClient]) -> None:
    return None


class Subscriptions:
    """Filters and their handlers for one pool; ``opened`` gives the pool's OPENED clients in slot order.

    Every filter is held on up to ``holders`` clients (only a shared subscription may have more than one: a plain
    filter on two connections would deliver each message twice).
    """

    def __init__(
        self,
        connection_id: str,
        opened: Callable[[], list[MqttClient]],
        *,
        holders: int = 1,
        on_holders: HoldersCallback = _ignore_holders,
    ) -> None:
        if holders < 1:
            raise ValueError("holders must be >= 1")
        self.connection_id = connection_id
        self._opened = opened
        self._wanted_holders = holders
        self._on_holders = on_holders
        self._handlers: dict[str, MessageHandler] = {}
        self._early: list[InboundMessage] = []  # received before any handler was registered
        # The clients holding subscriptions (by client id: clients need not be hashable), and the filters each has.
        self._held: dict[str, tuple[MqttClient, set[str]]] = {}
        # The pool's clients that keep their sessions, learnt from their first state change.
        self._session_keepers: set[str] = set()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def holders(self) -> list[MqttClient]:
        """The clients holding subscriptions now."""
        return [client for client, _ in self._held.values()]

    @property
    def holder(self) -> MqttClient | None:
        """The first holder (None while no client holds)."""
        return next((client for client, _ in self._held.values()), None)

    def _holder_count(self) -> int:
        if all(topic_filter.startswith("$share/") for topic_filter in self._handlers):
            return self._wanted_holders
        return 1

    def add(self, topic_filter: str, handler: MessageHandler) -> None:
        """Hold ``topic_filter``; messages matching it go to ``handler`` (one task per message)."""
        self._handlers[topic_filter] = handler
        early, self._early = self._early, []
        for message in early:
            self.on_message(message)
        self._schedule()

    def on_client_state(self, client: MqttClient, state: ConnectionState) -> None:
        """Called by the pool on every client state change."""
        if client.keeps_session:
            self._session_keepers.add(client.client_id)
        if client.client_id in self._held and state is not ConnectionState.OPENED:
            del self._held[client.client_id]
            self._on_holders(self.holders)
        self._schedule()

    def on_message(self, message: InboundMessage) -> None:
        if not self._handlers and not self._closed and len(self._early) < MAX_EARLY_MESSAGES:
            self._early.append(message)
            return
        for topic_filter, handler in self._handlers.items():
            if topic_matches(topic_filter, message.topic):
                self._spawn(self._handle(handler, message), f"message-{self.connection_id}")
                return
        logger.debug("connection %s: message on %s matches no subscription", self.connection_id, message.topic)
        message.acknowledge()

    def close(self) -> None:
        """Stop subscribing and cancel the handlers still running."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _complete(self) -> bool:
        """Every filter held on as many clients as wanted (or on every OPENED client when fewer are)."""
        wanted = min(self._holder_count(), len(self._candidates()))
        filters = set(self._handlers)
        return len(self._held) >= wanted and all(filters <= held for _, held in self._held.values())

    def _candidates(self) -> list[MqttClient]:
        """The OPENED clients that may hold: those that keep their sessions, if the pool has any."""
        opened = self._opened()
        if not self._session_keepers:
            return opened
        return [client for client in opened if client.client_id in self._session_keepers]

    def _schedule(self) -> None:
        if self._closed or not self._candidates() or not self._handlers or self._complete():
            return
        self._spawn(self._subscribe_all(), f"subscribe-{self.connection_id}")

    async def _subscribe_all(self) -> None:
        async with self._lock:
            opened = self._candidates()
            if self._closed or not opened:
                return
            for client_id, (client, _) in list(self._held.items()):
                if client.state is not ConnectionState.OPENED:
                    del self._held[client_id]
            # The highest slots first: uplinks go round-robin anyway, and the holders stay put across reconnects.
            for client in reversed(opened):
                if len(self._held) >= self._holder_count():
                    break
                self._held.setdefault(client.client_id, (client, set()))
            self._on_holders(self.holders)
            for client, held in list(self._held.values()):
                missing = [topic_filter for topic_filter in self._handlers if topic_filter not in held]
                try:
                    for topic_filter in missing:
                        await client.subscribe(topic_filter)
                        held.add(topic_filter)
                except SubscribeError as exc:
                    logger.error("connection %s: %s; retrying on the next state change", self.connection_id, exc)
                    continue
                if missing:
                    logger.info(
                        "connection %s: subscribed %s on %s", self.connection_id, ", ".join(missing), client.client_id
                    )
        if any(client.state is not ConnectionState.OPENED for client, _ in self._held.values()):
            self._schedule()  # a client dropped while subscribing: try another

    async def _handle(self, handler: MessageHandler, message: InboundMessage) -> None:
        try:
            await handler(message)
        except Exception:
            logger.exception("connection %s: handler for %s failed", self.connection_id, message.topic)
            message.acknowledge()  # delivered again, it would fail again
