"""A pool's subscriptions: held on one OPENED client, subscribed again after every reconnect or moved if it drops.

The sessions are clean, so a client that leaves OPENED loses its subscriptions; the next state change (this one
coming back, or another client OPENED) subscribes every filter again on whichever OPENED client comes first.
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


class Subscriptions:
    """Filters and their handlers for one pool; ``opened`` gives the pool's OPENED clients in slot order."""

    def __init__(self, connection_id: str, opened: Callable[[], list[MqttClient]]) -> None:
        self.connection_id = connection_id
        self._opened = opened
        self._handlers: dict[str, MessageHandler] = {}
        self._holder: MqttClient | None = None  # the client holding the subscriptions
        self._held: set[str] = set()  # filters the holder has
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def holder(self) -> MqttClient | None:
        return self._holder

    def add(self, topic_filter: str, handler: MessageHandler) -> None:
        """Hold ``topic_filter``; messages matching it go to ``handler`` (one task per message)."""
        self._handlers[topic_filter] = handler
        self._schedule()

    def on_client_state(self, client: MqttClient, state: ConnectionState) -> None:
        """Called by the pool on every client state change."""
        if self._holder is client and state is not ConnectionState.OPENED:
            self._holder, self._held = None, set()
        self._schedule()

    def on_message(self, message: InboundMessage) -> None:
        for topic_filter, handler in self._handlers.items():
            if topic_matches(topic_filter, message.topic):
                self._spawn(self._handle(handler, message), f"message-{self.connection_id}")
                return
        logger.debug("connection %s: message on %s matches no subscription", self.connection_id, message.topic)

    def close(self) -> None:
        """Stop subscribing and cancel the handlers still running."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule(self) -> None:
        if self._closed or not self._opened() or set(self._handlers) <= self._held:
            return
        self._spawn(self._subscribe_all(), f"subscribe-{self.connection_id}")

    async def _subscribe_all(self) -> None:
        async with self._lock:
            opened = self._opened()
            if self._closed or not opened:
                return
            client = self._holder
            if client is None or client.state is not ConnectionState.OPENED:
                client = opened[0]
                self._holder, self._held = client, set()
            missing = [topic_filter for topic_filter in self._handlers if topic_filter not in self._held]
            try:
                for topic_filter in missing:
                    await client.subscribe(topic_filter)
                    self._held.add(topic_filter)
            except SubscribeError as exc:
                logger.error("connection %s: %s; retrying on the next state change", self.connection_id, exc)
                return
            if missing:
                logger.info(
                    "connection %s: subscribed %s on %s", self.connection_id, ", ".join(missing), client.client_id
                )
        if self._holder is not client or client.state is not ConnectionState.OPENED:
            self._schedule()  # the client dropped while subscribing: try another

    async def _handle(self, handler: MessageHandler, message: InboundMessage) -> None:
        try:
            await handler(message)
        except Exception:
            logger.exception("connection %s: handler for %s failed", self.connection_id, message.topic)
