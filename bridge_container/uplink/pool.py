"""The MQTT pool of one connection: a bounded uplink buffer drained at the rate limits into up to 10 clients.

Flow: ``submit`` appends to the buffer (never blocks; False when full, which ingress turns into 429). One
dispatcher task hands buffered uplinks to OPENED clients in turn, each publish granted by the pool's
:class:`~bridge_container.uplink.limits.UplinkLimiter` (a disconnected client gets nothing; its share goes to the
others). Publishes complete on the MQTT adapter's I/O threads into a deque; a reaper task on the loop counts them
and records the latency. Every accepted uplink ends up published, at risk or dropped with a counted reason, or is
still buffered, in flight or settling: nothing disappears silently.

What "published" means depends on the connection's ``uplinkQos``:

* QoS 0 has no receipt. A write to the socket is counted ``written`` at once, and ``published`` only once its
  client stayed connected for ``QOS0_SETTLE_SECS`` afterwards (or closed cleanly, which the broker reads after
  everything written before). When the connection drops first, the uplinks written in that window are counted
  ``at_risk`` by the drop's reason: they may never have been read by the broker.
* QoS 1 is counted ``published`` on a successful PUBACK only. A PUBACK with a failure reason code is counted
  ``dropped`` by that reason; a publish the connection lost before its PUBACK goes back to the front of the buffer
  and is published again (``republished``) with the same ``MessageId`` user property, within the same limits.
  Each client has at most AWS IoT's 100 unacknowledged QoS 1 publishes in flight.

Every publish carries the MQTT 5 user properties it was accepted with, the pool's ``MessageId`` first.

One dispatcher per pool rather than one per client: with a shared aggregate limit, per-client dispatchers would
all wake for each aggregate token; one dispatcher serving the OPENED clients round-robin wakes once per grant.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from bridge_container.exceptions import PoolClosedError, PublishError
from bridge_container.metrics import UplinkMetrics
from bridge_container.mqtt.port import (
    PUBACK_FAILURE_PREFIX,
    ClientCallbacks,
    ClientFactory,
    CompletionCallback,
    InboundMessage,
    MqttClient,
    UserProperties,
    UserProperty,
    new_user_property,
)
from bridge_container.mqtt.subscriptions import MessageHandler, Subscriptions
from bridge_container.states import STATE_HINTS, ClientReport, ConnectionState, StateReport, pool_state
from bridge_container.tasks import spawn
from bridge_container.uplink.limits import RateLimits, UplinkLimiter
from bridge_domain.budget import PoolBudget
from bridge_domain.connection import ConnectionConfiguration
from bridge_domain.quotas import MAX_UNACKED_QOS1_PUBLISHES_PER_CONNECTION

logger = logging.getLogger(__name__)

# Publishes per dispatcher turn before yielding, so HTTP requests keep being served during a burst.
MAX_PUBLISHES_PER_TURN: Final = 256
# uvloop timers have millisecond resolution; a shorter sleep would spin.
MIN_SLEEP_SECS: Final = 0.001
REAP_INTERVAL_SECS: Final = 0.02
DEFAULT_MAX_IN_FLIGHT: Final = 1000
CONTROL_OPEN_TIMEOUT_SECS: Final = 10.0
DRAIN_POLL_SECS: Final = 0.02

# How long a QoS 0 write stays "written" before it counts as published. A write is lost when the connection breaks
# before the broker has read it: what sits in the socket buffers and on the wire, one round trip's worth. Killing the
# broker at 800 uplinks/s lost 7 uplinks written in the last ~9 ms; 1 s covers that with a wide margin while keeping
# the counter close to live. A connection that dies silently is only noticed by CRT's PINGREQ timeout: what it
# took meanwhile is lost without any sign (QoS 1 exists for that).
QOS0_SETTLE_SECS: Final = 1.0
MESSAGE_ID_PROPERTY: Final = "MessageId"

DROP_PUBLISH_FAILED: Final = "publish_failed"
DROP_SHUTDOWN: Final = "shutdown"
DROP_REPLACED: Final = "replaced"
DROP_STALE: Final = "stale"
# Adapter failures of a QoS 1 publish that mean the connection went away before its PUBACK: published again.
_RETRY_MARKERS: Final = ("OFFLINE_QUEUE", "DISCONNECT", "CONNECTION", "SOCKET", "TIMEOUT", "USER_REQUESTED_STOP")

Waiter = asyncio.Future[str | None]
"""Settled once an uplink's fate is known: None when published, else the reason it was dropped."""

Uplink = tuple[str, bytes, float, UserProperties, Waiter | None]
"""A buffered uplink: topic, payload, monotonic time of acceptance, user properties (``MessageId`` first), and the
future its LNS request waits on (``deliveryAck: published``) or None."""

Completion = tuple[float, float, str | None, int, Uplink]
"""A completed publish: accepted at, completed at (monotonic), failure name or None, client slot, the uplink."""


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """Size, buffer and rate limits of one pool."""

    size: int
    buffer_size: int
    limits: RateLimits
    # How the downlink subscription is spread and what each subscriber reserves (bridge_domain.budget).
    budget: PoolBudget | None = None
    # Publishes handed to CRT and not yet confirmed. Beyond it uplinks wait in the buffer, so that a slow broker or
    # a starved CRT thread fills the bridge's own bounded buffer (429) instead of CRT's unbounded operation queue.
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    qos: int = 0  # uplinkQos
    max_age_secs: float | None = None  # uplinkTimeValidity: older uplinks are dropped, not published late

    def __post_init__(self) -> None:
        if self.size < 1 or self.buffer_size < 1 or self.max_in_flight < 1:
            raise ValueError("pool size, buffer size and max in flight must be >= 1")
        if self.qos not in (0, 1):
            raise ValueError("uplink QoS is 0 or 1 (AWS IoT has no QoS 2)")

    @classmethod
    def from_configuration(cls, config: ConnectionConfiguration, *, lift_rate_limits: bool = False) -> PoolSettings:
        limits = (
            RateLimits.lifted()
            if lift_rate_limits
            else RateLimits(
                aggregate_per_sec=float(config.uplink_rate_per_sec),
                per_client_per_sec=float(config.per_client_rate_per_sec),
            )
        )
        return cls(
            size=config.pool_size,
            buffer_size=config.buffer_size,
            limits=limits,
            budget=config.budget,
            qos=config.uplink_qos,
            max_age_secs=config.uplink_time_validity,
        )


class MqttPool:
    """Up to ``size`` MQTT clients behind one bounded buffer; an async context manager."""

    def __init__(
        self,
        connection_id: str,
        settings: PoolSettings,
        factory: ClientFactory,
        metrics: UplinkMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connection_id = connection_id
        self.settings = settings
        self._factory = factory
        self._clock = clock
        self._buffer: deque[Uplink] = deque()
        self._capacity = settings.buffer_size
        self._limiter = UplinkLimiter(settings.limits, settings.size) if settings.limits.any else None
        self._clients: list[MqttClient] = []
        self._opened: list[int] = []  # slots of OPENED clients, in slot order
        self._round_robin = 0
        self._max_in_flight = settings.max_in_flight
        self._wakeup: asyncio.Future[None] | None = None
        self._completions: deque[Completion] = deque()
        self._sent = 0
        self._reaped = 0
        self._reap_needed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._started = False
        budget = settings.budget
        self.subscriptions = Subscriptions(
            connection_id,
            self._opened_clients,
            holders=max(1, budget.subscribers) if budget is not None else 1,
            on_holders=self._on_holders,
        )
        self._control: deque[_ControlPublish] = deque()
        self._failure_logged = False
        self._qos = settings.qos
        self._max_age_secs = settings.max_age_secs
        # QoS 1 publishes of each slot not yet counted back (the adapter's PUBACK, reaped); QoS 0 leaves them at 0.
        self._unacked = [0] * settings.size
        self._unacked_limit = MAX_UNACKED_QOS1_PUBLISHES_PER_CONNECTION
        # QoS 0 writes of each slot still settling: (reaped at, how many), oldest first.
        self._settling: list[deque[tuple[float, int]]] = [deque() for _ in range(settings.size)]
        self._settling_total = 0
        # Per slot: None while its writes settle normally; the drop's reason once it left OPENED unexpectedly.
        self._drop_reasons: list[str | None] = [None] * settings.size
        # MessageId: unique per accepted uplink across tasks and restarts (a random prefix), kept on re-publishes.
        self._id_prefix = secrets.token_hex(6) + "-"
        self._ids = itertools.count(1)
        labels = (connection_id,)
        self._published = metrics.published.labels(*labels)
        self._written = metrics.written.labels(*labels)
        self._at_risk = metrics.at_risk
        self._republished = metrics.republished.labels(*labels)
        self._dropped_failed = metrics.dropped.labels(connection_id, DROP_PUBLISH_FAILED)
        self._dropped_stale = metrics.dropped.labels(connection_id, DROP_STALE)
        self._dropped = metrics.dropped
        self._latency = metrics.publish_latency.labels(*labels)
        self._client_state = metrics.client_state
        self._pool_state = metrics.pool_state.labels(*labels)
        metrics.buffer_depth.labels(*labels).set_function(lambda: len(self._buffer))
        metrics.buffer_capacity.labels(*labels).set(self._capacity)
        metrics.in_flight.labels(*labels).set_function(lambda: self.in_flight)
        self._pool_state.state(ConnectionState.DEACTIVATED.value)

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def __aenter__(self) -> MqttPool:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Build and start the clients (they connect in the background) and the dispatcher."""
        if self._started:
            return
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._clients = [
            self._factory(slot, ClientCallbacks(self._on_client_state, functools.partial(self._on_message, slot)))
            for slot in range(self.settings.size)
        ]
        for client in self._clients:
            self._client_state.labels(self.connection_id, client.client_id).state(client.state.value)
        self._tasks = [
            spawn(self._dispatch(), f"pool-dispatch-{self.connection_id}"),
            spawn(self._reap_loop(), f"pool-reap-{self.connection_id}"),
        ]
        await asyncio.gather(*(client.start() for client in self._clients))

    async def stop(self, *, keep_buffer: bool = False) -> list[Uplink]:
        """Stop the clients and tasks. Buffered uplinks are returned when ``keep_buffer``, else counted dropped."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await asyncio.gather(*(client.stop() for client in self._clients), return_exceptions=True)
        self._reap()
        # The clients closed cleanly: the broker read what they wrote before their DISCONNECT.
        for slot in range(len(self._settling)):
            self._settle(slot, None)
        # Publishes that CRT never called back for (none expected after stop) are counted, not lost.
        lost = self._sent - self._reaped
        if lost > 0:
            self._dropped.labels(self.connection_id, DROP_SHUTDOWN).inc(lost)
            self._reaped = self._sent
        remaining = list(self._buffer)
        self._buffer.clear()
        if remaining and not keep_buffer:
            _settle_waiters(remaining, DROP_SHUTDOWN)
            self._dropped.labels(self.connection_id, DROP_SHUTDOWN).inc(len(remaining))
            logger.warning("connection %s: %d buffered uplinks dropped at stop", self.connection_id, len(remaining))
        self.subscriptions.close()
        while self._control:
            pending = self._control.popleft().future
            if not pending.done():
                pending.set_exception(PublishError(f"connection {self.connection_id} is stopped"))
        self._pool_state.state(ConnectionState.DEACTIVATED.value)
        return remaining if keep_buffer else []

    async def drain(self, deadline_secs: float) -> int:
        """Wait until every buffered uplink is published (or failed), at most ``deadline_secs``.

        Returns how many uplinks were still buffered or in flight at the deadline (they are counted as dropped by
        :meth:`stop`).
        """
        deadline = self._clock() + deadline_secs
        while (self._buffer or self.in_flight) and self._clock() < deadline:
            self._kick()
            await asyncio.sleep(DRAIN_POLL_SECS)
        self._reap()
        return len(self._buffer) + self.in_flight

    # --- uplinks ---------------------------------------------------------------------------------------------
    @property
    def free(self) -> int:
        """Uplinks the buffer can still take."""
        return self._capacity - len(self._buffer)

    @property
    def depth(self) -> int:
        return len(self._buffer)

    @property
    def in_flight(self) -> int:
        return self._sent - self._reaped

    def message_id(self) -> UserProperty:
        """A new ``MessageId`` user property: the pool's random prefix and a counter."""
        return new_user_property((MESSAGE_ID_PROPERTY, f"{self._id_prefix}{next(self._ids)}"))

    def submit(self, topic: str, payload: bytes, properties: UserProperties = (), waiter: Waiter | None = None) -> bool:
        """Enqueue one uplink; False when the buffer is full. Raises :class:`PoolClosedError` once stopped.

        ``properties`` are its MQTT 5 user properties; the pool puts a ``MessageId`` before them. ``waiter`` is
        settled when the uplink is published (None) or dropped (the reason).
        """
        if self._closed:
            raise PoolClosedError(f"connection {self.connection_id} is stopped")
        buffer = self._buffer
        uplink = (topic, payload, self._clock(), (self.message_id(), *properties), waiter)
        if not buffer and self._opened and self._publish_now(uplink):
            return True
        if len(buffer) >= self._capacity:
            return False
        buffer.append(uplink)
        self._kick()
        return True

    def _publish_now(self, uplink: Uplink) -> bool:
        """With nothing queued ahead and a grant at hand, publish at once: no buffer, no dispatcher wake-up."""
        if self._control or self._sent - self._reaped >= self._max_in_flight:
            return False  # feedback waiting for a grant goes first
        topic, payload, now, _, _ = uplink
        limiter = self._limiter
        if limiter is not None and limiter.aggregate_wait(now) > 0.0:
            return False
        slot = self._grant(limiter, now, len(topic) + len(payload))
        if slot < 0:
            return False
        self._send(slot, uplink)
        self._reap_needed.set()
        return True

    def _send(self, slot: int, uplink: Uplink) -> None:
        self._sent += 1
        qos = self._qos
        if qos:
            self._unacked[slot] += 1
        if uplink[4] is None:
            callback = _completion(self._completions, self._clock, slot, uplink)
        else:  # an LNS request waits for it: reaped at once rather than at the next reap interval
            callback = _completion_waking(self._completions, self._clock, slot, uplink, self._wake_reaper)
        self._clients[slot].publish_nowait(uplink[0], uplink[1], callback, uplink[3], qos)

    def submit_many(
        self,
        items: Iterable[tuple[str, bytes, UserProperties]],
        count: int,
        waiters: Iterable[Waiter | None] | None = None,
    ) -> bool:
        """Enqueue ``count`` uplinks (topic, payload, user properties) all together, or none (False) if they do not
        all fit; ``waiters``, one per item, as :meth:`submit` takes them."""
        if self._closed:
            raise PoolClosedError(f"connection {self.connection_id} is stopped")
        if count > self._capacity - len(self._buffer):
            return False
        now = self._clock()
        new_id = self.message_id
        self._buffer.extend(
            (topic, payload, now, (new_id(), *properties), waiter)
            for (topic, payload, properties), waiter in zip(items, waiters or itertools.repeat(None), strict=False)
        )
        self._kick()
        return True

    def adopt(self, uplinks: list[Uplink]) -> int:
        """Put uplinks taken from a replaced pool at the front of the buffer; returns how many did not fit."""
        fitting = uplinks[: max(0, self.free)]
        self._buffer.extendleft(reversed(fitting))
        overflow = len(uplinks) - len(fitting)
        if overflow:
            _settle_waiters(uplinks[len(fitting) :], DROP_REPLACED)
            self._dropped.labels(self.connection_id, DROP_REPLACED).inc(overflow)
        self._kick()
        return overflow

    def _kick(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _sleep_until_kicked(self, timeout_secs: float | None) -> None:
        wakeup = self._wakeup = asyncio.get_running_loop().create_future()
        try:
            if timeout_secs is None:
                await wakeup
            else:
                await asyncio.wait_for(wakeup, timeout_secs)
        except TimeoutError:
            pass
        finally:
            self._wakeup = None

    async def _dispatch(self) -> None:
        buffer = self._buffer
        opened = self._opened
        limiter = self._limiter
        clock = self._clock
        control = self._control
        send = self._send
        max_age = self._max_age_secs
        while True:
            if not opened or not (buffer or control):
                await self._sleep_until_kicked(None)
                continue
            if control:
                # Feedback goes first: it waits for a client's grant, and uplinks must not take the grants it needs.
                wait = self._serve_control(limiter, clock())
                if control:
                    await asyncio.sleep(max(wait, MIN_SLEEP_SECS))
                    continue
                if not buffer:
                    continue
            room = self._max_in_flight - self.in_flight
            if room <= 0:
                self._reap()  # count what CRT has confirmed since the reaper last ran
                room = self._max_in_flight - self.in_flight
                if room <= 0:
                    await asyncio.sleep(MIN_SLEEP_SECS)
                    continue
            now = clock()
            wait = limiter.aggregate_wait(now) if limiter is not None else 0.0
            published = 0
            stale = 0
            turn = min(MAX_PUBLISHES_PER_TURN, room)
            while wait == 0.0 and buffer and opened and published < turn:
                uplink = buffer[0]
                if max_age is not None and now - uplink[2] > max_age:
                    buffer.popleft()  # older than uplinkTimeValidity: dropped, not published late
                    _settle_waiters((uplink,), DROP_STALE)
                    stale += 1
                    continue
                size = len(uplink[0]) + len(uplink[1])
                slot = self._grant(limiter, now, size)
                if slot < 0:
                    wait = self._client_wait(limiter, now, size)
                    if wait == 0.0:  # every OPENED client has its 100 unacknowledged QoS 1 publishes out
                        self._reap()
                        wait = MIN_SLEEP_SECS
                    break
                buffer.popleft()
                send(slot, uplink)
                published += 1
                if limiter is not None:
                    wait = limiter.aggregate_wait(now)
            if stale:
                self._dropped_stale.inc(stale)
            if published:
                self._reap_needed.set()
            if wait > 0.0:
                # Not woken by submits: over the rate, each new uplink would only find the limiter closed again.
                await asyncio.sleep(max(wait, MIN_SLEEP_SECS))
            else:
                await asyncio.sleep(0)

    def _serve_control(self, limiter: UplinkLimiter | None, now: float) -> float:
        """Publish queued control messages while clients have grants; the seconds to wait when some are left."""
        control = self._control
        while control:
            item = control[0]
            if item.future.done():  # its caller gave up waiting
                control.popleft()
                continue
            size = len(item.topic) + len(item.payload)
            slot = self._grant(limiter, now, size, aggregate=False)
            if slot < 0:
                return self._client_wait(limiter, now, size)
            control.popleft()
            self._clients[slot].publish_nowait(item.topic, item.payload, item.completion, item.properties)
        return 0.0

    def _grant(self, limiter: UplinkLimiter | None, now: float, size: int, *, aggregate: bool = True) -> int:
        """The next OPENED slot (round-robin) with a grant, taken; -1 when none has one now.

        Control publishes (``aggregate=False``) take from the client's limits only, not from the uplink rate.
        """
        opened = self._opened
        count = len(opened)
        start = self._round_robin
        unacked = self._unacked
        for step in range(count):
            slot = opened[(start + step) % count]
            if unacked[slot] >= self._unacked_limit:
                continue
            if limiter is not None:
                if limiter.client_wait(slot, now, size) > 0.0:
                    continue
                limiter.take(slot, now, size, aggregate=aggregate)
            self._round_robin = (start + step + 1) % count
            return slot
        return -1

    def _client_wait(self, limiter: UplinkLimiter | None, now: float, size: int) -> float:
        if limiter is None:
            return 0.0
        return min((limiter.client_wait(slot, now, size) for slot in self._opened), default=MIN_SLEEP_SECS)

    async def _reap_loop(self) -> None:
        while True:
            if self.in_flight == 0 and not self._settling_total:
                self._reap_needed.clear()
                await self._reap_needed.wait()
            await asyncio.sleep(REAP_INTERVAL_SECS)
            self._reap()

    def _reap(self) -> None:
        """Count completed publishes (on the loop thread); see the module docstring for what each count means."""
        completions = self._completions
        qos = self._qos
        unacked = self._unacked
        acked = 0
        written: dict[int, int] = {}
        failed = 0
        refused: dict[str, int] = {}
        again: list[Uplink] = []
        first_error: str | None = None
        observe = self._latency.observe
        reaped = 0
        while completions:
            accepted_at, completed_at, failure, slot, uplink = completions.popleft()
            reaped += 1
            if qos:
                unacked[slot] -= 1
            waiter = uplink[4]
            if failure is None:
                observe(completed_at - accepted_at)
                if qos:
                    acked += 1
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)
                else:
                    written[slot] = written.get(slot, 0) + 1
            elif qos and failure.startswith(PUBACK_FAILURE_PREFIX):
                refused[failure] = refused.get(failure, 0) + 1
                first_error = first_error or failure
                if waiter is not None and not waiter.done():
                    waiter.set_result(failure.lower())
            elif qos and any(marker in failure for marker in _RETRY_MARKERS):
                again.append(uplink)
            else:
                failed += 1
                first_error = first_error or failure
                if waiter is not None and not waiter.done():
                    waiter.set_result(DROP_PUBLISH_FAILED)
        self._reaped += reaped
        if acked:
            self._published.inc(acked)
        now = self._clock()
        for slot, count in written.items():
            self._written.inc(count)
            reason = self._drop_reasons[slot]
            if reason is not None:  # written as its connection dropped
                self._at_risk.labels(self.connection_id, reason).inc(count)
            else:
                self._settling[slot].append((now, count))
                self._settling_total += count
        if self._settling_total:
            settled_before = now - QOS0_SETTLE_SECS
            for slot, settling in enumerate(self._settling):
                if settling and settling[0][0] <= settled_before:
                    self._settle(slot, None, settled_before)
        if again:
            # Lost with their connection before the PUBACK: first in line again, with the same MessageId.
            self._buffer.extendleft(reversed(again))
            self._republished.inc(len(again))
            self._kick()
        for failure, count in refused.items():
            self._dropped.labels(self.connection_id, failure.lower()).inc(count)
        if failed:
            self._dropped_failed.inc(failed)
        if acked or written:
            self._failure_logged = False
        if (failed or refused) and not self._failure_logged:  # once per run of failures, not once per message
            logger.warning(
                "connection %s: %d uplink publishes failed (%s); counted as dropped",
                self.connection_id,
                failed + sum(refused.values()),
                first_error,
            )
            self._failure_logged = True

    def _wake_reaper(self) -> None:
        """From an adapter thread: reap on the loop now (a waiting LNS request is answered without delay)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._reap)

    def _settle(self, slot: int, at_risk_reason: str | None, before: float = float("inf")) -> None:
        """Count slot ``slot``'s settling QoS 0 writes up to ``before``: published, or at risk for the reason."""
        settling = self._settling[slot]
        count = 0
        while settling and settling[0][0] <= before:
            count += settling.popleft()[1]
        if not count:
            return
        self._settling_total -= count
        if at_risk_reason is None:
            self._published.inc(count)
        else:
            self._at_risk.labels(self.connection_id, at_risk_reason).inc(count)
            logger.warning(
                "connection %s: %d QoS 0 uplinks written in the last %.0f s before a connection dropped (%s) are "
                "counted at risk: the broker may not have read them",
                self.connection_id,
                count,
                QOS0_SETTLE_SECS,
                at_risk_reason,
            )

    # --- control publishes and subscriptions -----------------------------------------------------------------
    async def publish_control(self, topic: str, payload: bytes, properties: UserProperties = ()) -> None:
        """Publish a feedback message on an OPENED client within its limits, before any uplink; raises PublishError.

        The dispatcher serves control messages first, on whichever client has a grant; this waits until the message
        is written, at most ``CONTROL_OPEN_TIMEOUT_SECS``. It carries a new ``MessageId`` and ``properties``.
        """
        if self._closed:
            raise PublishError(f"connection {self.connection_id} is stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str | None] = loop.create_future()
        item = _ControlPublish(
            topic, payload, future, _settle_from_thread(loop, future), (self.message_id(), *properties)
        )
        self._control.append(item)
        self._kick()
        try:
            failure = await asyncio.wait_for(future, CONTROL_OPEN_TIMEOUT_SECS)
        except TimeoutError:
            reason = "no MQTT client is OPENED" if not self._opened else "no client had room within its limits"
            raise PublishError(
                f"connection {self.connection_id}: {reason} for {CONTROL_OPEN_TIMEOUT_SECS:.0f} s"
            ) from None
        if failure is not None:
            raise PublishError(f"connection {self.connection_id}: publish on {topic!r} failed: {failure}")

    def add_subscription(self, topic_filter: str, handler: MessageHandler) -> None:
        """Hold ``topic_filter`` on the budget's subscribing clients (see :class:`.Subscriptions`)."""
        self.subscriptions.add(topic_filter, handler)

    # --- states ----------------------------------------------------------------------------------------------
    def _on_client_state(self, client: MqttClient, state: ConnectionState) -> None:
        slot = self._clients.index(client) if client in self._clients else -1
        if slot < 0:
            return
        if state is ConnectionState.OPENED:
            self._drop_reasons[slot] = None
            if slot not in self._opened:
                self._opened.append(slot)
                self._opened.sort()
        else:
            self._reap()  # count what was written before the change with the state it was written in
            if state is ConnectionState.DEACTIVATED:  # stopped: a clean DISCONNECT follows what was written
                self._drop_reasons[slot] = None
                self._settle(slot, None)
            elif slot in self._opened:
                reason = client.failure_name or "UNKNOWN"
                self._drop_reasons[slot] = reason
                self._settle(slot, reason)
            if slot in self._opened:
                self._opened.remove(slot)
        self._client_state.labels(self.connection_id, client.client_id).state(state.value)
        self._pool_state.state(self.state.value)
        self.subscriptions.on_client_state(client, state)
        self._kick()

    def _on_message(self, slot: int, message: InboundMessage) -> None:
        # AWS counts a delivery against the connection's publishes, like one the client makes.
        if self._limiter is not None:
            self._limiter.record_inbound(slot, self._clock())
        self.subscriptions.on_message(message)

    def _on_holders(self, holders: list[MqttClient]) -> None:
        budget = self.settings.budget
        if self._limiter is None or budget is None:
            return
        slots = {self._clients.index(client) for client in holders if client in self._clients}
        self._limiter.reserve_inbound(slots, budget.inbound_reserved_per_sec)

    def _opened_clients(self) -> list[MqttClient]:
        return [self._clients[slot] for slot in self._opened]

    @property
    def states(self) -> dict[str, ConnectionState]:
        """Each client's state by client id."""
        return {client.client_id: client.state for client in self._clients}

    def report(self) -> StateReport:
        """The pool's state, why it is not OPENED, and each client's state and last error."""
        if self._closed and not self._clients:
            return StateReport(ConnectionState.DEACTIVATED, STATE_HINTS[ConnectionState.DEACTIVATED])
        return StateReport.of_clients(
            ClientReport(
                client.client_id, client.state, None if client.state is ConnectionState.OPENED else client.last_error
            )
            for client in self._clients
        )

    @property
    def state(self) -> ConnectionState:
        """OPENED when any client is; otherwise the most hopeful state among the clients."""
        if self._closed and not self._clients:
            return ConnectionState.DEACTIVATED
        return pool_state(client.state for client in self._clients)

    @property
    def opened_clients(self) -> int:
        return len(self._opened)


def _completion(
    completions: deque[Completion], clock: Callable[[], float], slot: int, uplink: Uplink
) -> CompletionCallback:
    # Runs on the adapter's I/O thread: deque.append is atomic, and the clock needs no loop.
    def done(failure: str | None, _append: Callable[[Completion], None] = completions.append) -> None:
        _append((uplink[2], clock(), failure, slot, uplink))

    return done


def _completion_waking(
    completions: deque[Completion], clock: Callable[[], float], slot: int, uplink: Uplink, wake: Callable[[], None]
) -> CompletionCallback:
    # As _completion, then wakes the loop: an LNS request is waiting for this outcome. Only the first completion of
    # a run wakes it (one reap takes them all); one that slips past a reap in progress waits for the next interval.
    def done(failure: str | None) -> None:
        first = not completions
        completions.append((uplink[2], clock(), failure, slot, uplink))
        if first:
            wake()

    return done


def _settle_waiters(uplinks: Iterable[Uplink], reason: str) -> None:
    """Tell the LNS requests waiting on ``uplinks`` that they were dropped for ``reason``."""
    for uplink in uplinks:
        waiter = uplink[4]
        if waiter is not None and not waiter.done():
            waiter.set_result(reason)


@dataclass(frozen=True, slots=True)
class _ControlPublish:
    topic: str
    payload: bytes
    future: asyncio.Future[str | None]
    completion: CompletionCallback
    properties: UserProperties


def _settle_from_thread(loop: asyncio.AbstractEventLoop, future: asyncio.Future[str | None]) -> CompletionCallback:
    # Runs on the adapter's I/O thread: the future is settled on its own loop.
    def done(failure: str | None) -> None:
        loop.call_soon_threadsafe(_settle, future, failure)

    return done


def _settle(future: asyncio.Future[str | None], failure: str | None) -> None:
    if not future.done():  # the caller may have given up waiting
        future.set_result(failure)
