"""What the console shows as published: uplinks taken from the ingress while a page watches, and feedback publishes.

The uplink hot path pays nothing while no page watches: :class:`UplinkTap` is put between a connection's ingress and
its pool only while the live view polls (it takes itself out :data:`IDLE_SECS` after the last poll), and then
costs one bounded-deque append of a tuple per accepted uplink (measured in ``benchmarks/console_capture.py``). The
payload is kept as bytes; it is decoded only when shown.
Feedback publishes are rare (one per downlink), so :class:`ControlLog` records every one, in a bounded ring too.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from bridge_container.ingress.pipeline import UplinkSink
from bridge_container.mqtt.port import InboundMessage, UserProperties

Waiter = asyncio.Future[str | None]

RING_SIZE: Final = 50  # messages kept per connection: the last few per device of a small fleet
IDLE_SECS: Final = 60.0  # the tap stays this long after the last poll of the live view


@dataclass(frozen=True, slots=True)
class Captured:
    """One message as it went to the broker: when (epoch seconds), where, the document's bytes, its user properties.

    An uplink's properties are those the ingress gave (DevEUI, LnsKind, EventType, FPort); the pool adds MessageId.
    """

    at: float
    topic: str
    payload: bytes
    properties: UserProperties = ()


Entry = tuple[float, str, bytes, UserProperties]  # (epoch seconds, topic, payload, properties): what a ring holds


class TappableIngress(Protocol):
    """The ingress side of a connection: its sink can be swapped (``UplinkIngress.use_sink``)."""

    def use_sink(self, sink: UplinkSink) -> UplinkSink: ...


class UplinkTap:
    """An :class:`UplinkSink` in front of the pool that keeps the last accepted uplinks."""

    def __init__(self, sink: UplinkSink, ring_size: int = RING_SIZE, clock: Callable[[], float] = time.time) -> None:
        self._sink = sink
        self._clock = clock
        self._ring_size = ring_size
        self.ring: deque[Entry] = deque(maxlen=ring_size)

    @property
    def free(self) -> int:
        return self._sink.free

    @property
    def depth(self) -> int:
        return self._sink.depth

    def submit(self, topic: str, payload: bytes, properties: UserProperties = (), waiter: Waiter | None = None) -> bool:
        accepted = self._sink.submit(topic, payload, properties, waiter)
        if accepted:
            # a tuple: a dataclass costs several times more
            self.ring.append((self._clock(), topic, payload, properties))
        return accepted

    def submit_many(
        self, items: list[tuple[str, bytes, UserProperties]], count: int, waiters: Sequence[Waiter] | None = None
    ) -> bool:
        accepted = self._sink.submit_many(items, count, waiters)
        if accepted:
            now = self._clock()
            self.ring.extend(
                (now, topic, payload, properties) for topic, payload, properties in items[-self._ring_size :]
            )
        return accepted


class UplinkWatch:
    """The tap of one connection's ingress, put in while the live view polls and taken out when it stops."""

    def __init__(self, ingress: TappableIngress, sink: UplinkSink, idle_secs: float = IDLE_SECS) -> None:
        self.ingress = ingress
        self.tap = UplinkTap(sink)
        self._replaced: UplinkSink = sink
        self._idle_secs = idle_secs
        self._expiry: asyncio.TimerHandle | None = None

    @property
    def attached(self) -> bool:
        return self._expiry is not None

    def touch(self) -> None:
        """A poll: tap the ingress (if not yet) and keep it tapped for another ``idle_secs``."""
        if self._expiry is None:
            self._replaced = self.ingress.use_sink(self.tap)
        else:
            self._expiry.cancel()
        self._expiry = asyncio.get_running_loop().call_later(self._idle_secs, self.detach)

    def detach(self) -> None:
        """Give the ingress back the sink the tap replaced (the captured uplinks stay readable)."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
            self.ingress.use_sink(self._replaced)


class ControlPool(Protocol):
    """The part of the pool the downlink service uses."""

    async def publish_control(self, topic: str, payload: bytes) -> None: ...

    def add_subscription(self, topic_filter: str, handler: Callable[[InboundMessage], Awaitable[None]]) -> None: ...


class ControlLog:
    """The pool as the downlink service sees it, keeping the last feedback messages it published."""

    def __init__(self, pool: ControlPool, ring_size: int = RING_SIZE, clock: Callable[[], float] = time.time) -> None:
        self._pool = pool
        self._clock = clock
        self.ring: deque[Entry] = deque(maxlen=ring_size)

    async def publish_control(self, topic: str, payload: bytes) -> None:
        await self._pool.publish_control(topic, payload)
        self.ring.append((self._clock(), topic, payload, ()))

    def add_subscription(self, topic_filter: str, handler: Callable[[InboundMessage], Awaitable[None]]) -> None:
        self._pool.add_subscription(topic_filter, handler)


def newest_first(entries: Iterable[Entry], limit: int) -> list[Captured]:
    return [Captured(*entry) for entry in reversed(list(entries))][:limit]
