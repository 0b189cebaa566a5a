"""One connection's ingress: authenticate, parse, validate, render, and hand to the pool; the answer as HTTP.

Every message a route carries is authenticated: ThingPark's uplinks and downlink reports by their Token (when an
AS key is configured), each signed request accepted once (:mod:`~bridge_container.ingress.replay`); ChirpStack,
TTS and batches by the secret in their Authorization header, compared in constant time. Every refusal is a 4xx
(or 503) with a JSON reason, counted in ``bridge_uplinks_rejected{reason}``, and nothing refused is published.

The hot path is plain Python on bytes: orjson parses once, explicit checks (``fields.py``) replace per-message
model validation (the connection configuration was validated once), the topic pattern is pre-parsed, and the
answer bodies of the common cases are constants.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hmac
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, Protocol

import orjson

from bridge_container.exceptions import PoolClosedError
from bridge_container.ingress import batch, chirpstack, events, thingpark, tts
from bridge_container.ingress.events import DeviceEvent, DownlinkReport
from bridge_container.ingress.exceptions import (
    BadUplinkError,
    IngressError,
    InvalidFieldError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from bridge_container.ingress.record import UplinkRecord, UplinkRenderer
from bridge_container.ingress.replay import MAX_REPLAY_ENTRIES, ReplayCache
from bridge_container.metrics import UplinkMetrics
from bridge_container.mqtt.port import UserProperties
from bridge_container.registration import Registrar
from bridge_domain.connection import ConnectionConfiguration
from bridge_domain.events import EVENT_FIELD, EventKind
from bridge_domain.lns import ChirpStackLns, ThingParkLns, TtsLns
from bridge_domain.quotas import MAX_PAYLOAD_BYTES
from bridge_domain.secrets import reveal
from bridge_domain.topics import DEV_EUI_FIELD

LNS_KINDS: Final = ("thingpark", "chirpstack", "tts", "batch")
# One document is published as at most AWS IoT's 128 KiB payload; the LNS's own envelope around it (radio metadata
# of up to 10 gateways, ids, the base64 form of the payload) stays well below as much again.
MAX_BODY_BYTES: Final = 2 * MAX_PAYLOAD_BYTES
# A batch: 128 documents of the largest size, or its 10,000 items at 1.6 KiB each (a typical uplink is under 1 KiB).
MAX_BATCH_BODY_BYTES: Final = 128 * MAX_PAYLOAD_BYTES
JSON_MEDIA_TYPES: Final = frozenset({b"application/json"})
BATCH_MEDIA_TYPES: Final = frozenset({b"application/json", b"application/x-ndjson"})
MAX_RETRY_AFTER_SECS: Final = 60
BATCH_ISSUES_SHOWN: Final = 20
ACCEPTED_ONE: Final = b'{"accepted":1}'
# deliveryAck 'published': how long a request waits for the broker's PUBACK before it is answered 503 (the LNS
# retries; the uplink may still be published, so consumers see it at least once). Below the LNSs' own timeouts.
PUBLISHED_ACK_TIMEOUT_SECS: Final = 10.0
ACKNOWLEDGED: Final = b'{"accepted":0}'

ReportHandler = Callable[[str, dict[str, Any]], Awaitable[bool]]
"""Takes ThingPark downlink reports (``DevEUI_downlink_Sent`` / ``DevEUI_downlink_Rejected``) and their body;
False when it is not running (the report is then counted as ignored)."""

LifecycleHandler = Callable[[DownlinkReport], Awaitable[bool]]
"""Takes ChirpStack's and TTS's reports on a downlink (checked at the door); False when downlinks are not running."""


class UplinkSink(Protocol):
    """Where accepted uplinks go (the pool)."""

    @property
    def free(self) -> int: ...

    @property
    def depth(self) -> int: ...

    def submit(
        self,
        topic: str,
        payload: bytes,
        properties: UserProperties = (),
        waiter: asyncio.Future[str | None] | None = None,
    ) -> bool: ...

    def submit_many(
        self,
        items: list[tuple[str, bytes, UserProperties]],
        count: int,
        waiters: Sequence[asyncio.Future[str | None]] | None = None,
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class IngressResult:
    """An HTTP answer: status, JSON body, and Retry-After seconds for 429/503."""

    status: int
    body: bytes
    retry_after_secs: int | None = None
    # deliveryAck 'published': the outcomes to wait for before this answer goes out (see UplinkIngress.handle),
    # and the replay Token to accept again if it turns into a refusal (ThingPark retries with the same Token).
    pending: tuple[asyncio.Future[str | None], ...] | None = None
    replay_token: str | None = None


def error_result(status: int, reason: str, message: str, retry_after_secs: int | None = None) -> IngressResult:
    return IngressResult(status, orjson.dumps({"error": reason, "message": message}), retry_after_secs)


def refusal(exc: IngressError) -> IngressResult:
    """The answer to a refused request: ``error`` (the reason code), ``message``, and the ``field`` to blame."""
    body: dict[str, object] = {"error": exc.reason, "message": exc.message}
    if exc.field is not None:
        body["field"] = exc.field
        if isinstance(exc, InvalidFieldError):
            body["reason"] = exc.problem
    return IngressResult(exc.status, orjson.dumps(body), exc.retry_after_secs)


def max_body_bytes(lns: str) -> int:
    return MAX_BATCH_BODY_BYTES if lns == "batch" else MAX_BODY_BYTES


def check_request(lns: str, content_type: bytes | None, declared_length: int) -> None:
    """Refuse, before the body is read, a media type other than JSON (415) or a declared length over the bound (413).

    Every LNS posts ``application/json`` (parameters such as ``charset`` are ignored); a batch may also be
    ``application/x-ndjson``.
    """
    media_type = content_type.split(b";", 1)[0].strip().lower() if content_type is not None else b""
    if media_type not in (BATCH_MEDIA_TYPES if lns == "batch" else JSON_MEDIA_TYPES):
        raise UnsupportedMediaTypeError(
            "unsupported_media_type",
            "the body must be application/json" + (" or application/x-ndjson" if lns == "batch" else ""),
            field="Content-Type",
        )
    if declared_length > max_body_bytes(lns):
        raise too_large(lns)


def too_large(lns: str) -> PayloadTooLargeError:
    return PayloadTooLargeError("too_large", f"the request body exceeds {max_body_bytes(lns)} bytes")


def _header_secret_matches(header: bytes | None, secret: bytes) -> bool:
    """The header is the secret itself or ``Bearer <secret>`` (compared in constant time)."""
    if header is None:
        return False
    value = header[7:] if header[:7].lower() == b"bearer " else header
    return hmac.compare_digest(value.strip(), secret)


class UplinkIngress:
    """Turns LNS requests of one connection into buffered uplinks."""

    def __init__(
        self,
        connection_id: str,
        config: ConnectionConfiguration,
        sink: UplinkSink,
        metrics: UplinkMetrics,
        registrar: Registrar,
        reports: ReportHandler | None,
        *,
        lifecycle: LifecycleHandler | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        max_replay_entries: int = MAX_REPLAY_ENTRIES,
    ) -> None:
        self.connection_id = connection_id
        self._sink = sink
        self._registrar = registrar
        self._reports = reports
        self._lifecycle = lifecycle
        self._events = config.events
        self._event_pattern = config.event_pattern
        self._now = now
        self._renderer = UplinkRenderer(
            config.uplink_pattern, config.uplink_document, prefix=config.uplink_topic_prefix
        )
        self._rate_per_sec = config.uplink_rate_per_sec
        self._ack_published = config.delivery_ack == "published"
        thingpark_settings = config.lns_of_kind("thingpark")
        chirpstack_settings = config.lns_of_kind("chirpstack")
        tts_settings = config.lns_of_kind("tts")
        # Secrets are revealed once here, never per request.
        self._thingpark = thingpark_settings if isinstance(thingpark_settings, ThingParkLns) else None
        self._as_key = reveal(self._thingpark.as_key) if self._thingpark is not None else None
        self._max_drift_secs = self._thingpark.max_time_drift_secs if self._thingpark is not None else 0
        self._replays = ReplayCache(max_replay_entries) if self._as_key is not None else None
        self._chirpstack_token = (
            (reveal(chirpstack_settings.ingress_token) or "").encode()
            if isinstance(chirpstack_settings, ChirpStackLns)
            else None
        )
        self._tts_token = (
            (reveal(tts_settings.ingress_token) or "").encode() if isinstance(tts_settings, TtsLns) else None
        )
        self._tts_device_id_prefix = tts_settings.device_id_prefix if isinstance(tts_settings, TtsLns) else ""
        batch_token = reveal(config.batch_ingress_token)
        self._batch_token = batch_token.encode() if batch_token else None
        self._metrics = metrics
        self._accepted = {kind: metrics.accepted.labels(connection_id, kind) for kind in LNS_KINDS}
        self.draining = False

    def use_sink(self, sink: UplinkSink) -> UplinkSink:
        """Send accepted uplinks to ``sink`` from now on; the previous sink (the console's capture wraps the pool)."""
        previous, self._sink = self._sink, sink
        return previous

    # --- entry point -----------------------------------------------------------------------------------------
    async def handle(
        self, lns: str, body: bytes, *, query: bytes = b"", authorization: bytes | None = None
    ) -> IngressResult:
        """Answer one request to ``/uplinks/{lns}``; with ``deliveryAck: published``, once the broker has them."""
        try:
            if self.draining:
                raise PoolClosedError("draining")
            if lns == "thingpark":
                answer = self._thingpark_request(body, query)
                result = answer if isinstance(answer, IngressResult) else await self._thingpark_report(*answer)
            elif lns == "chirpstack":
                carried = self._chirpstack_request(body, query, authorization)
                result = carried if isinstance(carried, IngressResult) else await self._downlink_report(carried)
            elif lns == "tts":
                carried = self._tts_request(body, authorization)
                result = carried if isinstance(carried, IngressResult) else await self._downlink_report(carried)
            elif lns == "batch":
                result = self._batch_request(body, authorization)
            else:
                return error_result(404, "unknown_lns", f"unknown LNS {lns!r}; use one of {', '.join(LNS_KINDS)}")
            return result if result.pending is None else await self._published(lns, result)
        except IngressError as exc:
            self._metrics.rejected.labels(self.connection_id, lns, exc.reason).inc()
            if isinstance(exc, UnauthorizedError):
                self._metrics.unauthorized.labels(self.connection_id, lns).inc()
            return refusal(exc)
        except PoolClosedError:
            self._metrics.rejected.labels(self.connection_id, lns, "stopping").inc()
            return error_result(503, "stopping", "the bridge is shutting down; retry on another task", 1)

    async def _published(self, lns: str, result: IngressResult) -> IngressResult:
        """``result`` once every uplink it accepted is acknowledged by the broker, else 503 ``not_published``."""
        pending = result.pending or ()
        try:
            async with asyncio.timeout(PUBLISHED_ACK_TIMEOUT_SECS):
                # shield: a request given up on (client gone, timeout) leaves the pool's futures to the pool.
                outcomes = await asyncio.gather(*(asyncio.shield(waiter) for waiter in pending))
        except TimeoutError:
            outcomes = ["timeout" if not waiter.done() else waiter.result() for waiter in pending]
        failed = [outcome for outcome in outcomes if outcome is not None]
        if not failed:
            return IngressResult(result.status, result.body)
        self._metrics.rejected.labels(self.connection_id, lns, "not_published").inc()
        if result.replay_token is not None and self._replays is not None:
            self._replays.forget(result.replay_token)  # the LNS's retry of this request must be accepted
        return error_result(
            503,
            "not_published",
            f"{len(failed)} of {len(pending)} uplinks were not acknowledged by the broker ({failed[0]}); retry",
            1,
        )

    # --- per LNS ---------------------------------------------------------------------------------------------
    def _thingpark_request(self, body: bytes, query: bytes) -> IngressResult | tuple[str, dict[str, Any]]:
        """The answer, or a verified downlink report (root, document) for :meth:`_thingpark_report`.

        Synchronous, so that an uplink costs no coroutine: only handing a report over waits.
        """
        if self._thingpark is None:
            raise UnauthorizedError("not_configured", "ThingPark is not configured for this connection")
        document = _parse_json(body)
        root = thingpark.root_of(document)
        if root == thingpark.UPLINK_ROOT:
            signed = None
            if self._as_key is not None:
                signed = self._authenticate(root, thingpark.inner_of(document, root), query)
            record = thingpark.parse_uplink(document, body)
            thingpark.check_query_dev_eui(query, record)
            result = self._accept(record, "thingpark")
            if signed is not None and result.status == HTTPStatus.ACCEPTED:
                self._remember(signed)
                if result.pending is not None:
                    return dataclasses.replace(result, replay_token=signed.token)
            return result
        if root in thingpark.EVENT_ROOTS:
            inner = thingpark.inner_of(document, root)
            signed = self._authenticate(root, inner, query)
            event = events.parse_thingpark(root, document)
            if event is None:  # a notification type the bridge does not carry (reset); one label, whatever the type
                return self._thingpark_ignored(root)
            result = self._publish_event(event)
            if signed is not None and result.status == HTTPStatus.ACCEPTED:
                self._remember(signed)
            return result
        if root in thingpark.REPORT_ROOTS:
            report = thingpark.inner_of(document, root)
            signed = self._authenticate(root, report, query)
            thingpark.check_report(root, report)
            if signed is not None:
                self._remember(signed)  # before the report is handed over: a copy arriving meanwhile is refused
            return root, document
        return self._thingpark_ignored(root)

    async def _thingpark_report(self, root: str, document: dict[str, Any]) -> IngressResult:
        reports = self._reports
        if reports is not None and await reports(root, document):
            return IngressResult(202, ACCEPTED_ONE)
        return self._thingpark_ignored(root)

    def _thingpark_ignored(self, root: str) -> IngressResult:
        """Other ThingPark messages (location, notifications, ...) are neither published nor acted on."""
        self._metrics.ignored.labels(self.connection_id, "thingpark", root).inc()
        return IngressResult(202, ACKNOWLEDGED)

    def _authenticate(self, root: str, inner: dict[str, Any], query: bytes) -> thingpark.SignedRequest | None:
        """With an AS key: the verified, not yet accepted request (else 401/403/503); without one: None."""
        replays = self._replays
        if self._as_key is None or replays is None:
            return None
        signed = thingpark.verify_token(root, inner, query, self._as_key, self._max_drift_secs, self._now())
        replays.check(signed.token, signed.verified_at)
        return signed

    def _remember(self, signed: thingpark.SignedRequest) -> None:
        if self._replays is not None:
            self._replays.remember(signed.token, signed.expires_at, signed.verified_at)

    def _chirpstack_request(
        self, body: bytes, query: bytes, authorization: bytes | None
    ) -> IngressResult | DownlinkReport:
        if self._chirpstack_token is None:
            raise UnauthorizedError("not_configured", "ChirpStack is not configured for this connection")
        if not _header_secret_matches(authorization, self._chirpstack_token):
            raise UnauthorizedError("unauthorized", "the Authorization header does not carry the ingress token")
        document = _parse_json(body)
        event = thingpark.query_value(query, b"event") if query else None
        if event is None:
            event = chirpstack.UPLINK_EVENT if isinstance(document, dict) and chirpstack.is_uplink(document) else ""
        if event == chirpstack.UPLINK_EVENT:
            return self._accept(chirpstack.parse_up(document, body), "chirpstack")
        if event in events.CHIRPSTACK_EVENTS:
            parsed = events.parse_chirpstack(event, document)
            return parsed if isinstance(parsed, DownlinkReport) else self._publish_event(parsed)
        self._metrics.ignored.labels(self.connection_id, "chirpstack", event or "unknown").inc()
        return IngressResult(202, ACKNOWLEDGED)

    def _tts_request(self, body: bytes, authorization: bytes | None) -> IngressResult | DownlinkReport:
        if self._tts_token is None:
            raise UnauthorizedError("not_configured", "The Things Stack is not configured for this connection")
        if not _header_secret_matches(authorization, self._tts_token):
            raise UnauthorizedError("unauthorized", "the Authorization header does not carry the webhook secret")
        document = _parse_json(body)
        kind = tts.message_kind(document)
        if kind == tts.UPLINK_KEY:
            return self._accept(tts.parse_uplink(document, body), "tts")
        if kind in events.TTS_EVENTS or kind in events.TTS_DOWNLINK_STATUSES:
            parsed = events.parse_tts(kind, document, self._tts_device_id_prefix)
            return parsed if isinstance(parsed, DownlinkReport) else self._publish_event(parsed)
        self._metrics.ignored.labels(self.connection_id, "tts", kind).inc()
        return IngressResult(202, ACKNOWLEDGED)

    def _batch_request(self, body: bytes, authorization: bytes | None) -> IngressResult:
        if self._batch_token is None:
            raise UnauthorizedError("not_configured", "the batch endpoint needs configuration.batchIngressToken")
        if not _header_secret_matches(authorization, self._batch_token):
            raise UnauthorizedError("unauthorized", "the Authorization header does not carry the batch token")
        lines = body.count(b"\n") + (not body.endswith(b"\n"))
        if self._sink.free < lines:
            # Refused before parsing: a producer retrying a full buffer must not cost a parse per attempt. (An NDJSON
            # batch has one line per uplink; an array counts as one line here and is checked exactly once parsed.)
            return self._buffer_full("batch", lines)
        items: list[tuple[str, bytes, UserProperties]] = []
        dev_euis: list[str] = []
        issues: list[dict[str, object]] = []
        renderer = self._renderer
        for index, (item, raw) in enumerate(batch.split(body)):
            try:
                record = batch.parse_item(item, raw)
                items.append((renderer.topic(record), renderer.document(record), record.user_properties()))
                dev_euis.append(record.dev_eui)
            except (BadUplinkError, PayloadTooLargeError) as exc:
                issue: dict[str, object] = {"index": index, "error": exc.reason, "message": exc.message}
                if exc.field is not None:
                    issue["field"] = exc.field
                issues.append(issue)
        if issues:
            self._metrics.rejected.labels(self.connection_id, "batch", "invalid_items").inc()
            shown = issues[:BATCH_ISSUES_SHOWN]
            return IngressResult(
                400,
                orjson.dumps(
                    {
                        "error": "invalid_items",
                        "message": f"{len(issues)} of {len(issues) + len(items)} uplinks are invalid; none accepted",
                        "items": shown,
                    }
                ),
            )
        waiters = [self._new_waiter() for _ in items] if self._ack_published else None
        if not self._sink.submit_many(items, len(items), waiters):
            return self._buffer_full("batch", len(items))
        self._accepted["batch"].inc(len(items))
        observe = self._registrar.observe
        for dev_eui in dev_euis:
            observe(dev_eui)
        pending = tuple(waiter for waiter in waiters if waiter is not None) if waiters is not None else None
        return IngressResult(202, b'{"accepted":%d}' % len(items), pending=pending)

    # --- events beyond uplinks ------------------------------------------------------------------------------
    def _publish_event(self, event: DeviceEvent) -> IngressResult:
        """Publish a device event on its topic when the connection takes that kind; else count it as ignored."""
        kind: EventKind = event.kind
        pattern = self._event_pattern
        if pattern is None or not self._events.enabled(kind):
            self._metrics.ignored.labels(self.connection_id, event.lns, kind.value).inc()
            return IngressResult(202, ACKNOWLEDGED)
        topic = pattern.render({DEV_EUI_FIELD: event.dev_eui, EVENT_FIELD: kind.value})
        if not self._sink.submit(topic, event.document(), event.user_properties()):
            return self._buffer_full(event.lns, 1)
        self._metrics.events.labels(self.connection_id, event.lns, kind.value).inc()
        if event.registers:
            self._registrar.observe(event.dev_eui)
        return IngressResult(202, ACCEPTED_ONE)

    async def _downlink_report(self, report: DownlinkReport) -> IngressResult:
        """Hand a downlink's lifecycle report to the downlink service; ignored (counted) when downlinks are off."""
        lifecycle = self._lifecycle
        if lifecycle is not None and await lifecycle(report):
            return IngressResult(202, ACCEPTED_ONE)
        self._metrics.ignored.labels(self.connection_id, report.lns, f"downlink_{report.status}").inc()
        return IngressResult(202, ACKNOWLEDGED)

    # --- shared ----------------------------------------------------------------------------------------------
    def _accept(self, record: UplinkRecord, lns: str) -> IngressResult:
        renderer = self._renderer
        waiter = self._new_waiter() if self._ack_published else None
        if not self._sink.submit(renderer.topic(record), renderer.document(record), record.user_properties(), waiter):
            return self._buffer_full(lns, 1)
        self._accepted[lns].inc()
        self._registrar.observe(record.dev_eui)
        return (
            IngressResult(202, ACCEPTED_ONE) if waiter is None else IngressResult(202, ACCEPTED_ONE, pending=(waiter,))
        )

    @staticmethod
    def _new_waiter() -> asyncio.Future[str | None]:
        return asyncio.get_running_loop().create_future()

    def _buffer_full(self, lns: str, count: int) -> IngressResult:
        self._metrics.rejected.labels(self.connection_id, lns, "buffer_full").inc(count)
        # Time for the buffer to drain at the configured rate, so the LNS comes back when there is room.
        retry_after = min(MAX_RETRY_AFTER_SECS, max(1, math.ceil(self._sink.depth / self._rate_per_sec)))
        return error_result(
            429, "buffer_full", f"the uplink buffer is full ({self._sink.depth} waiting); retry later", retry_after
        )


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadUplinkError("malformed", f"the body is not valid JSON: {exc}") from None
