"""From accepted downlink to network server: a bounded backlog, concurrent calls, per-device order, feedback.

Up to ``max_in_flight`` calls run at once (a network server answers in tens of milliseconds, so 100/s needs
several in flight); the rate limiter inside the sender paces them. Downlinks for one device go out one after the
other in arrival order, because a device's queue at the network server is ordered. A downlink whose validity
ended while it waited is not sent: it ends as ``expired``. Every accepted downlink ends exactly once, and its
``on_done`` says whether the network server took it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import Enum
from types import TracebackType

from bridge_container.downlink.documents import DownlinkRequest
from bridge_container.downlink.exceptions import DownlinkError, LnsError
from bridge_container.downlink.feedback import Feedback, FeedbackPublisher
from bridge_container.downlink.lns import LnsAdapter, LnsRouter
from bridge_container.downlink.metrics import DownlinkMetrics
from bridge_container.downlink.reasons import FailureReason, FeedbackStatus
from bridge_container.downlink.sender import LnsSender
from bridge_container.tasks import spawn

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    backlog_size: int = 1_000  # accepted downlinks not yet answered by the network server (queued + in flight)
    max_in_flight: int = 32
    drain_deadline_secs: float = 5.0
    leave_unsent_on_stop: bool = False  # not sent at stop: no feedback, ended LEFT (the broker delivers it again)


class Ending(Enum):
    """How an accepted downlink ended."""

    SENT = "sent"  # the network server accepted it
    ENDED = "ended"  # failed or expired, with its feedback
    LEFT = "left"  # not sent when the bridge stopped, without feedback: the broker is to deliver it again


Done = Callable[[Ending], None]
"""Called once when a downlink ends."""


def _ignore(_ending: Ending) -> None:
    return None


@dataclass(frozen=True, slots=True)
class _Job:
    request: DownlinkRequest
    adapter: LnsAdapter
    received_at: float
    expires_at: float | None  # monotonic; None: valid until sent
    on_done: Done


class _DeviceOrder:
    """One FIFO lock per DevEUI with a call in flight; forgotten when the last holder leaves."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, dev_eui: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(dev_eui, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[dev_eui] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[dev_eui]
            if users == 1:
                del self._locks[dev_eui]
            else:
                self._locks[dev_eui] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class DownlinkDispatcher:
    """An async context manager; ``submit`` never blocks and reports every refusal as failed feedback."""

    def __init__(
        self,
        router: LnsRouter,
        sender: LnsSender,
        feedback: FeedbackPublisher,
        metrics: DownlinkMetrics,
        settings: DispatchSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._router = router
        self._sender = sender
        self._feedback = feedback
        self._metrics = metrics
        self._settings = settings or DispatchSettings()
        self._clock = clock
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._in_flight = asyncio.Semaphore(self._settings.max_in_flight)
        self._device_order = _DeviceOrder()
        self._calls: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._accepting = False
        self._left = 0  # not sent at stop, left unacknowledged for the broker

    def submit(
        self,
        request: DownlinkRequest,
        received_at: float,
        *,
        expires_at: float | None = None,
        on_done: Done = _ignore,
    ) -> bool:
        """Accept ``request`` for delivery; False (and failed feedback) when it cannot be accepted."""
        if not self._accepting:
            on_done(self._stopped(request, "the bridge is stopping"))
            return False
        try:
            adapter = self._router.select(request.lns)
        except DownlinkError as exc:
            self.fail(request, exc.reason, str(exc))
            on_done(Ending.ENDED)
            return False
        if self._pending >= self._settings.backlog_size:
            self.fail(request, FailureReason.QUEUE_FULL, f"{self._pending} downlinks already wait for the rate limit")
            on_done(Ending.ENDED)
            return False
        self._set_pending(self._pending + 1)
        self._queue.put_nowait(_Job(request, adapter, received_at, expires_at, on_done))
        return True

    def _stopped(self, request: DownlinkRequest, detail: str, *, lns: str | None = None) -> Ending:
        """A downlink the stopping bridge will not send: failed with ``shutdown``, or left for the broker."""
        if self._settings.leave_unsent_on_stop:
            self._left += 1
            return Ending.LEFT
        self.fail(request, FailureReason.SHUTDOWN, detail, lns=lns)
        return Ending.ENDED

    def expire(self, request: DownlinkRequest, detail: str, *, lns: str | None = None) -> None:
        """Count a downlink whose validity ended before it was sent and publish its expired feedback."""
        self._metrics.expired()
        self._feedback.emit(
            Feedback(
                dev_eui=request.dev_eui,
                status=FeedbackStatus.EXPIRED,
                correlation_id=request.correlation_id,
                detail=detail,
                lns=lns,
            )
        )

    def fail(
        self,
        request: DownlinkRequest,
        reason: FailureReason,
        detail: str,
        *,
        lns: str | None = None,
        attempts: int = 1,
    ) -> None:
        """Count a failed downlink and publish its failed feedback."""
        self._metrics.failed(reason, attempts)
        self._feedback.emit(
            Feedback(
                dev_eui=request.dev_eui,
                status=FeedbackStatus.FAILED,
                correlation_id=request.correlation_id,
                reason=reason,
                detail=detail,
                lns=lns,
            )
        )

    def _set_pending(self, pending: int) -> None:
        self._pending = pending
        self._metrics.set_queue_depth(pending)
        if pending == 0:
            self._idle.set()
        else:
            self._idle.clear()

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._in_flight.acquire()
            except asyncio.CancelledError:
                self._queue.put_nowait(job)  # back in line, so that shutdown reports it as failed
                raise
            task = asyncio.create_task(self._deliver(job), name=f"downlink-{job.request.dev_eui}")
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _deliver(self, job: _Job) -> None:
        request, lns = job.request, job.adapter.kind
        ending = Ending.ENDED
        try:
            async with self._device_order.hold(request.dev_eui):
                late_secs = None if job.expires_at is None else self._clock() - job.expires_at
                if late_secs is not None and late_secs >= 0:
                    self.expire(request, f"its validity ended {late_secs:.1f} s before its turn came", lns=lns)
                    return
                receipt = await self._sender.send(job.adapter.prepare(request))
        except LnsError as exc:
            logger.debug("downlink to %s for %s failed: %s", lns, request.dev_eui, exc)
            self.fail(request, exc.reason, str(exc), lns=lns, attempts=exc.attempts)
        except asyncio.CancelledError:
            ending = self._stopped(request, "the bridge stopped before the network server answered", lns=lns)
            raise
        except Exception as exc:
            logger.exception("downlink to %s for %s failed unexpectedly", lns, request.dev_eui)
            self.fail(request, FailureReason.INTERNAL, type(exc).__name__, lns=lns)
        else:
            ending = Ending.SENT
            self._metrics.sent(lns, self._clock() - job.received_at, receipt.attempts)
            self._feedback.emit(
                Feedback(
                    dev_eui=request.dev_eui,
                    status=FeedbackStatus.QUEUED,
                    correlation_id=request.correlation_id,
                    lns=lns,
                    lns_reference=receipt.reference,
                )
            )
        finally:
            self._in_flight.release()
            self._set_pending(self._pending - 1)
            job.on_done(ending)

    async def __aenter__(self) -> DownlinkDispatcher:
        self._accepting = True
        self._runner = spawn(self._run(), "downlink-dispatcher")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._accepting = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.drain_deadline_secs):
                await self._idle.wait()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None
        calls = list(self._calls)
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        while not self._queue.empty():
            job = self._queue.get_nowait()
            ending = self._stopped(job.request, "the bridge stopped before sending it", lns=job.adapter.kind)
            self._set_pending(self._pending - 1)
            job.on_done(ending)
        if self._left:
            logger.info("%d downlink(s) not sent before the stop are left for the broker to deliver again", self._left)
