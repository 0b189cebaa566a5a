"""The downlink path of one connection: shared subscription in, network-server calls out, feedback back.

``DownlinkService`` is an async context manager owning the HTTP client, rate limiter, dispatcher and feedback
publisher; entering it registers ``$share/<group>/<downlink filter>`` on the pool (which holds it on one open
client and renews it after every reconnect). With ``downlinkEnabled: false`` it registers nothing.

Each message is acknowledged to the broker (PUBACK, on a persistent session) when its downlink ended: accepted by
the network server, failed, expired or recognised as a duplicate (:mod:`.dedup`). A message whose validity (MQTT 5
message expiry, ``ValidityTime``, ``validUntil``) ended is not sent; its feedback says ``expired``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol

import httpx
from prometheus_client import CollectorRegistry

from bridge_container.downlink.chirpstack import ChirpStackAdapter
from bridge_container.downlink.correlation import CorrelationIds
from bridge_container.downlink.dedup import MESSAGE_ID_PROPERTY, DuplicateFilter
from bridge_container.downlink.dispatcher import DispatchSettings, DownlinkDispatcher, Ending
from bridge_container.downlink.documents import DownlinkRequest, correlation_id_of, dev_eui_from_topic, parse_downlink
from bridge_container.downlink.exceptions import DocumentError
from bridge_container.downlink.feedback import Feedback, FeedbackPublisher, FeedbackSettings, FeedbackTopics
from bridge_container.downlink.lifecycle import LifecycleReports
from bridge_container.downlink.limiter import RateLimiter, RateSettings
from bridge_container.downlink.lns import LnsAdapter, LnsRouter
from bridge_container.downlink.metrics import DownlinkMetrics
from bridge_container.downlink.reasons import FailureReason, FeedbackStatus
from bridge_container.downlink.reports import ThingParkReports
from bridge_container.downlink.sender import HttpSettings, LnsSender, build_http_client
from bridge_container.downlink.thingpark import ThingParkAdapter
from bridge_container.downlink.tts import TtsAdapter
from bridge_container.ingress.events import DownlinkReport
from bridge_container.mqtt.port import InboundMessage
from bridge_domain.connection import ConnectionConfiguration
from bridge_domain.deveui import is_dev_eui, normalise_dev_eui
from bridge_domain.lns import ChirpStackLns, ThingParkLns, TtsLns
from bridge_domain.topics import shared_subscription

logger = logging.getLogger(__name__)


class DownlinkPool(Protocol):
    """The two things the downlink path needs from the MQTT pool."""

    async def publish_control(self, topic: str, payload: bytes) -> None: ...

    def add_subscription(self, topic_filter: str, handler: Callable[[InboundMessage], Awaitable[None]]) -> None: ...


@dataclass(frozen=True, slots=True)
class DownlinkSettings:
    """What a connection's configuration does not say: HTTP client, concurrency and feedback tuning."""

    http: HttpSettings = field(default_factory=HttpSettings)
    max_in_flight: int = 32
    drain_deadline_secs: float = 5.0
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)
    # The subscribers' sessions outlive this task (it comes back with the same client IDs): a downlink not sent by
    # the time it stops is left unacknowledged, for the broker to deliver again, instead of failing with shutdown.
    leave_unsent_on_stop: bool = False


def build_adapters(
    configuration: ConnectionConfiguration, correlation_ids: CorrelationIds
) -> tuple[list[LnsAdapter], list[str]]:
    """Adapters for the network servers that can take downlinks, in configuration order, and why others cannot."""
    adapters: list[LnsAdapter] = []
    skipped: list[str] = []
    for settings in configuration.lns:
        if isinstance(settings, ThingParkLns):
            adapters.append(ThingParkAdapter(settings, correlation_ids=correlation_ids))
        elif isinstance(settings, ChirpStackLns):
            if settings.api_token is None:
                skipped.append("chirpstack has no apiToken")
            else:
                adapters.append(ChirpStackAdapter(settings, correlation_ids=correlation_ids))
        elif isinstance(settings, TtsLns):
            if settings.api_key is None:
                skipped.append("tts has no apiKey")
            else:
                adapters.append(TtsAdapter(settings))
    return adapters, skipped


class DownlinkService:
    """One connection's downlinks; see the module docstring."""

    def __init__(
        self,
        connection_id: str,
        configuration: ConnectionConfiguration,
        pool: DownlinkPool,
        registry: CollectorRegistry,
        settings: DownlinkSettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.connection_id = connection_id
        self._configuration = configuration
        self._pool = pool
        self._settings = settings or DownlinkSettings()
        self._transport = transport
        self._clock = clock
        self._wall_clock = wall_clock
        self.metrics = DownlinkMetrics.create(registry, connection_id)
        self.correlation_ids = CorrelationIds()
        self.duplicates = DuplicateFilter(clock=clock)
        self.topic_filter = shared_subscription(
            configuration.shared_subscription_group, configuration.downlink_pattern.subscription_filter()
        )
        self._stack: contextlib.AsyncExitStack | None = None
        self._feedback: FeedbackPublisher | None = None
        self._dispatcher: DownlinkDispatcher | None = None
        self.reports: ThingParkReports | None = None
        self.lifecycle_reports: LifecycleReports | None = None

    @property
    def enabled(self) -> bool:
        return self._configuration.downlink_enabled

    async def __aenter__(self) -> DownlinkService:
        if not self.enabled:
            logger.info("downlinks disabled for connection %s: no subscription", self.connection_id)
            return self
        configuration, settings = self._configuration, self._settings
        adapters, skipped = build_adapters(configuration, self.correlation_ids)
        for problem in skipped:
            logger.warning("connection %s: downlinks cannot use %s", self.connection_id, problem)
        for adapter in adapters:
            if isinstance(adapter, ThingParkAdapter) and not adapter.signs_requests:
                logger.warning("connection %s: ThingPark has no asKey, downlinks are sent unsigned", self.connection_id)
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(build_http_client(settings.http, transport=self._transport))
            limiter = RateLimiter(RateSettings(configuration.downlink_rate_per_sec))
            sender = LnsSender(client, limiter, settings.http.retry)
            topics = FeedbackTopics(configuration.downlink_pattern)
            self._feedback = await stack.enter_async_context(
                FeedbackPublisher(self._pool.publish_control, topics, self.metrics, settings.feedback)
            )
            dispatch = DispatchSettings(
                backlog_size=configuration.downlink_buffer_size,
                max_in_flight=settings.max_in_flight,
                drain_deadline_secs=settings.drain_deadline_secs,
                leave_unsent_on_stop=settings.leave_unsent_on_stop,
            )
            self._dispatcher = await stack.enter_async_context(
                DownlinkDispatcher(
                    LnsRouter(adapters), sender, self._feedback, self.metrics, dispatch, clock=self._clock
                )
            )
            self.reports = ThingParkReports(self._feedback, self.metrics, self.correlation_ids)
            self.lifecycle_reports = LifecycleReports(self._feedback, self.metrics, self.correlation_ids)
            self.metrics.set_queue_depth(0)
            self._pool.add_subscription(self.topic_filter, self.handle)
            logger.info("connection %s: downlinks from %s", self.connection_id, self.topic_filter)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        self.reports = self.lifecycle_reports = None
        if stack is not None:
            await stack.aclose()  # dispatcher drains first, then feedback, then the HTTP client closes
        self._dispatcher = self._feedback = None
        self.metrics.forget()

    async def handle(self, message: InboundMessage) -> None:
        """The subscription's handler: validate, then queue for the network server; never raises."""
        received_at = self._clock()
        self.metrics.received()
        dispatcher = self._dispatcher
        if dispatcher is None:
            if not self._settings.leave_unsent_on_stop:
                self._fail_unparsed(message, FailureReason.SHUTDOWN, "the bridge is not running downlinks")
                message.acknowledge()
            return
        try:
            request = parse_downlink(
                message.topic,
                message.payload,
                pattern=self._configuration.downlink_pattern,
                default_port=self._configuration.downlink_port,
            )
        except DocumentError as exc:
            self._fail_unparsed(message, exc.reason, str(exc))
            message.acknowledge()
            return
        expires_at = self._expires_at(message, request, received_at)
        if expires_at is not None and expires_at <= received_at:
            dispatcher.expire(request, "its validity had ended when the bridge received it")
            message.acknowledge()
            return
        message_id = message.user_property(MESSAGE_ID_PROPERTY)
        identity = f"message:{message_id}" if message_id else request.identity
        if identity is not None and not self.duplicates.begin(identity):
            self.metrics.duplicate()
            logger.debug("connection %s: downlink %s already taken; not sent again", self.connection_id, identity)
            message.acknowledge()
            return

        def done(ending: Ending) -> None:
            if identity is not None:
                self.duplicates.finish(identity, sent=ending is Ending.SENT)
            if ending is not Ending.LEFT:
                message.acknowledge()

        dispatcher.submit(request, received_at, expires_at=expires_at, on_done=done)

    def _expires_at(self, message: InboundMessage, request: DownlinkRequest, received_at: float) -> float | None:
        """When (on the monotonic clock) the downlink's validity ends, the earliest of the ones it carries."""
        ends: list[float] = []
        if message.expiry_secs is not None:
            ends.append(received_at + message.expiry_secs)
        if request.valid_until is not None:
            ends.append(received_at + (request.valid_until - self._wall_clock()).total_seconds())
        return min(ends, default=None)

    async def report(self, kind: str, body: Mapping[str, Any]) -> bool:
        """ThingPark's Sent and Rejected reports, published as feedback; False while downlinks are not running."""
        if self.reports is None:
            return False
        await self.reports(kind, body)
        return True

    async def lifecycle(self, report: DownlinkReport) -> bool:
        """ChirpStack's and TTS's downlink reports, published as feedback; False while downlinks are not running."""
        if self.lifecycle_reports is None:
            return False
        self.lifecycle_reports(report)
        return True

    def _fail_unparsed(self, message: InboundMessage, reason: FailureReason, detail: str) -> None:
        self.metrics.failed(reason)
        raw = dev_eui_from_topic(message.topic, self._configuration.downlink_pattern)
        if raw is None or self._feedback is None:
            logger.warning("downlink on %.80r dropped without feedback: %s", message.topic, detail)
            return
        self._feedback.emit(
            Feedback(
                dev_eui=normalise_dev_eui(raw) if is_dev_eui(raw) else raw,
                status=FeedbackStatus.FAILED,
                correlation_id=correlation_id_of(message.payload),
                reason=reason,
                detail=detail,
            )
        )
