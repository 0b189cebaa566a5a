"""Downlink documents taken from the downlink topic: the bridge's JSON form and ThingPark's ``DevEUI_downlink``.

The bridge's form::

    {"payload_hex": "01ff", "FPort": 2, "confirmed": true, "correlationId": "order-17"}
    {"payload": "Af8=", ...}                      # base64 instead of hex
    {"payload_hex": "01", "lns": "chirpstack"}    # pick one of the connection's network servers
    {"payload_hex": "01", "validUntil": "2026-12-02T20:00:00Z"}      # not sent after that time
    {"payload_hex": "01", "queueItemId": "0b6f…-…"}  # ChirpStack's queue-item id (a UUID): sent once

ThingPark's form (as IoT Flow documents it; AS_ID, AS_KEY and Time are ignored, the connection's own win)::

    {"DevEUI_downlink": {"DevEUI": "...", "FPort": 2, "payload_hex": "01ff", "Confirmed": "1", "CorrelationID": "...",
                         "ValidityTime": "2026-12-02T20:00:00.000+00:00"}}

The DevEUI always comes from the topic; one inside a ThingPark document must agree with it.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bridge_container.downlink.exceptions import DocumentError
from bridge_domain.deveui import is_dev_eui, normalise_dev_eui
from bridge_domain.lns import LnsKind
from bridge_domain.loading import format_location
from bridge_domain.topics import DEV_EUI_FIELD, TopicPattern

THINGPARK_ROOT = "DevEUI_downlink"
MIN_FPORT = 1
MAX_FPORT = 223  # 224 is the LoRaWAN test port, 225-255 are reserved
MAX_PAYLOAD_BYTES = 255  # no LoRaWAN region carries a longer frame; the network server applies its own data-rate limit
MAX_CORRELATION_ID_CHARS = 128
_MAX_REPORTED_ISSUES = 3

_ModelT = TypeVar("_ModelT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class DownlinkRequest:
    """One downlink, validated and independent of the document form it came in."""

    dev_eui: str
    f_port: int
    payload: bytes
    confirmed: bool = False
    correlation_id: str | None = None
    lns: LnsKind | None = None  # None: the connection's first network server
    valid_until: datetime | None = None  # not sent after (ThingPark ValidityTime, the bridge form's validUntil)
    queue_item_id: str | None = None  # ChirpStack's queue-item id, given by the application
    thingpark_correlation_id: str | None = None  # the CorrelationID of a ThingPark-form document

    @property
    def identity(self) -> str | None:
        """What names this downlink across deliveries: its ThingPark CorrelationID or ChirpStack queue-item id."""
        if self.thingpark_correlation_id is not None:
            return f"thingpark:{self.thingpark_correlation_id}"
        if self.queue_item_id is not None:
            return f"chirpstack:{self.queue_item_id}"
        return None


class _BridgeDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    payload_hex: str | None = Field(default=None, pattern=r"^(?:[0-9A-Fa-f]{2})*$")
    payload: str | None = Field(default=None, description="base64")
    f_port: int | None = Field(default=None, ge=MIN_FPORT, le=MAX_FPORT, alias="FPort")
    confirmed: bool = False
    correlation_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CORRELATION_ID_CHARS,
        alias="correlationId",
    )
    lns: LnsKind | None = None
    valid_until: datetime | None = Field(default=None, alias="validUntil")
    queue_item_id: uuid.UUID | None = Field(default=None, alias="queueItemId")

    @model_validator(mode="after")
    def _one_payload(self) -> _BridgeDocument:
        if (self.payload_hex is None) == (self.payload is None):
            raise ValueError("give exactly one of payload_hex (hexadecimal) and payload (base64)")
        if self.valid_until is not None and self.valid_until.utcoffset() is None:
            raise ValueError("validUntil needs a UTC offset (Z or +hh:mm)")
        return self

    def payload_bytes(self) -> bytes:
        if self.payload_hex is not None:
            return bytes.fromhex(self.payload_hex)
        try:
            return base64.b64decode(self.payload or "", validate=True)
        except binascii.Error as exc:
            raise DocumentError(f"payload: not valid base64 ({exc})") from None


class _ThingParkDocument(BaseModel):
    # ThingPark documents carry more (Time, AS_ID, AS_KEY, ValidityTime, DriverCfg...): ignored, never echoed.
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    dev_eui: str | None = Field(default=None, alias="DevEUI")
    f_port: int | None = Field(default=None, ge=MIN_FPORT, le=MAX_FPORT, alias="FPort")
    payload_hex: str | None = Field(default=None, pattern=r"^(?:[0-9A-Fa-f]{2})*$")
    payload: object | None = None
    confirmed: bool = Field(default=False, alias="Confirmed")
    correlation_id: str | None = Field(
        default=None, min_length=1, max_length=MAX_CORRELATION_ID_CHARS, alias="CorrelationID"
    )
    validity_time: datetime | None = Field(default=None, alias="ValidityTime")

    @model_validator(mode="after")
    def _hex_payload(self) -> _ThingParkDocument:
        if self.payload is not None:
            raise ValueError("a decoded 'payload' needs a ThingPark device driver; send payload_hex instead")
        if self.payload_hex is None:
            raise ValueError("payload_hex is required")
        if self.validity_time is not None and self.validity_time.utcoffset() is None:
            raise ValueError("ValidityTime needs a UTC offset (Z or +hh:mm)")
        return self


def dev_eui_from_topic(topic: str, pattern: TopicPattern) -> str | None:
    """The raw DevEUI level of ``topic`` under the downlink pattern, or None when the topic does not match."""
    values = pattern.parse_topic(topic)
    return None if values is None else values.get(DEV_EUI_FIELD)


def parse_downlink(topic: str, body: bytes, *, pattern: TopicPattern, default_port: int) -> DownlinkRequest:
    """Validate one message from the downlink topic; raise :class:`DocumentError` with a reason to publish."""
    raw_dev_eui = dev_eui_from_topic(topic, pattern)
    if raw_dev_eui is None:
        raise DocumentError(f"topic {topic!r:.80} does not match the downlink pattern {pattern.pattern}")
    if not is_dev_eui(raw_dev_eui):
        raise DocumentError("the DevEUI level of the topic is not 16 hexadecimal digits")
    dev_eui = normalise_dev_eui(raw_dev_eui)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DocumentError(f"not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise DocumentError("the document must be a JSON object")
    if THINGPARK_ROOT in document:
        return _from_thingpark(document, dev_eui, default_port)
    bridge = _validate(_BridgeDocument, document)
    return DownlinkRequest(
        dev_eui=dev_eui,
        f_port=bridge.f_port if bridge.f_port is not None else default_port,
        payload=_checked_size(bridge.payload_bytes()),
        confirmed=bridge.confirmed,
        correlation_id=bridge.correlation_id,
        lns=bridge.lns,
        valid_until=bridge.valid_until,
        queue_item_id=None if bridge.queue_item_id is None else str(bridge.queue_item_id),
    )


def _from_thingpark(document: dict[str, Any], dev_eui: str, default_port: int) -> DownlinkRequest:
    if len(document) != 1 or not isinstance(document[THINGPARK_ROOT], dict):
        raise DocumentError(f"a ThingPark document has exactly one key, {THINGPARK_ROOT}, holding an object")
    thingpark = _validate(_ThingParkDocument, document[THINGPARK_ROOT])
    if thingpark.dev_eui is not None and thingpark.dev_eui.upper() != dev_eui:
        raise DocumentError("DevEUI in the document differs from the DevEUI in the topic")
    return DownlinkRequest(
        dev_eui=dev_eui,
        f_port=thingpark.f_port if thingpark.f_port is not None else default_port,
        payload=_checked_size(bytes.fromhex(thingpark.payload_hex or "")),
        confirmed=thingpark.confirmed,
        correlation_id=thingpark.correlation_id,
        valid_until=thingpark.validity_time,
        thingpark_correlation_id=thingpark.correlation_id,
    )


def _validate(model: type[_ModelT], document: dict[str, Any]) -> _ModelT:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        shown = "; ".join(
            f"{format_location(tuple(error['loc']))}: {error['msg']}" for error in errors[:_MAX_REPORTED_ISSUES]
        )
        more = len(errors) - _MAX_REPORTED_ISSUES
        raise DocumentError(shown + (f" (and {more} more)" if more > 0 else "")) from None


def _checked_size(payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DocumentError(f"payload is {len(payload)} bytes; LoRaWAN carries at most {MAX_PAYLOAD_BYTES}")
    return payload


def correlation_id_of(body: bytes) -> str | None:
    """The correlation id of a document that failed validation, when one can still be read (for its feedback)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(document, dict) and isinstance(document.get(THINGPARK_ROOT), dict):
        document = document[THINGPARK_ROOT]
    if not isinstance(document, dict):
        return None
    for key in ("correlationId", "CorrelationID"):
        value = document.get(key)
        if isinstance(value, str) and 0 < len(value) <= MAX_CORRELATION_ID_CHARS:
            return value
    return None
