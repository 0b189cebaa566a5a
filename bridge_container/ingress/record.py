"""The normalised uplink: one record per uplink whatever the LNS, rendered to the configured topic and document."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from bridge_container.ingress.exceptions import BadUplinkError
from bridge_domain.deveui import normalise_dev_eui
from bridge_domain.exceptions import InvalidDevEuiError, TopicError
from bridge_domain.quotas import MAX_PAYLOAD_BYTES
from bridge_domain.topics import DEV_EUI_FIELD, TopicPattern

# AWS IoT's largest message payload.
MAX_DOCUMENT_BYTES: Final = MAX_PAYLOAD_BYTES
MAX_FPORT: Final = 255
MAX_FCNT: Final = 2**32 - 1

DocumentMode = Literal["thingpark", "flat", "decoded"]


@dataclass(slots=True)
class UplinkRecord:
    """What every LNS tells about an uplink, under one set of names (ThingPark's, the topic placeholders')."""

    lns: str
    dev_eui: str
    source: dict[str, Any]  # the LNS document as parsed
    raw: bytes | None = None  # the document exactly as received, when one request carried just it
    fport: int | None = None
    fcnt_up: int | None = None
    dev_addr: str | None = None
    application_id: str | None = None
    time: str | None = None
    payload_hex: str | None = None
    payload_base64: str | None = None
    decoded: Any = None
    rssi: float | None = None
    snr: float | None = None

    def topic_value(self, name: str) -> object | None:
        if name == DEV_EUI_FIELD:
            return self.dev_eui
        if name == "FPort":
            return self.fport
        if name == "FCntUp":
            return self.fcnt_up
        if name == "DevAddr":
            return self.dev_addr
        if name == "LnsKind":
            return self.lns
        if name == "ApplicationId":
            return self.application_id
        return None

    def hex_payload(self) -> str | None:
        if self.payload_hex is not None:
            return self.payload_hex
        if self.payload_base64 is None:
            return None
        try:
            return base64.b64decode(self.payload_base64, validate=True).hex()
        except (binascii.Error, ValueError):
            raise BadUplinkError("malformed", "the frame payload is not valid base64") from None

    def thingpark_form(self) -> dict[str, Any]:
        """The record as the inside of ThingPark's ``DevEUI_uplink`` document (fields it lacks are left out)."""
        form: dict[str, Any] = {"DevEUI": self.dev_eui}
        optional = (
            ("Time", self.time),
            ("DevAddr", self.dev_addr),
            ("FPort", self.fport),
            ("FCntUp", self.fcnt_up),
            ("payload_hex", self.hex_payload()),
            ("LrrRSSI", self.rssi),
            ("LrrSNR", self.snr),
            ("payload", self.decoded),
        )
        form.update((key, value) for key, value in optional if value is not None)
        return form


def dev_eui_of(value: object) -> str:
    try:
        return normalise_dev_eui(value)
    except InvalidDevEuiError as exc:
        raise BadUplinkError("invalid_deveui", str(exc)) from None


def optional_int(value: object, field: str, maximum: int) -> int | None:
    """An integer field that some LNS send as a string ("JSON untyped"); None when absent."""
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum:
        return value
    raise BadUplinkError("invalid_field", f"{field} must be an integer between 0 and {maximum}")


def optional_str(value: object, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise BadUplinkError("invalid_field", f"{field} must be a string")


def first_object(value: object) -> dict[str, Any]:
    """The first element of a list of objects (radio metadata), or an empty dict."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    return {}


def optional_float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class UplinkRenderer:
    """Topic and document of a record for one connection; the pattern is parsed once."""

    def __init__(self, pattern: TopicPattern, mode: DocumentMode) -> None:
        self.pattern = pattern
        self.mode = mode
        # The common pattern has only {DevEUI}, already 16 validated hex digits: plain concatenation is safe.
        self._dev_eui_only = pattern.names == (DEV_EUI_FIELD,)

    def topic(self, record: UplinkRecord) -> str:
        if self._dev_eui_only:
            literals = self.pattern.literals
            return literals[0] + record.dev_eui + literals[1]
        values = {}
        for name in self.pattern.names:
            value = record.topic_value(name)
            if value is None:
                raise BadUplinkError("topic", f"the uplink has no {name} for the topic pattern")
            values[name] = value
        try:
            return self.pattern.render(values)
        except TopicError as exc:
            raise BadUplinkError("topic", str(exc)) from None

    def document(self, record: UplinkRecord) -> bytes:
        mode = self.mode
        if mode == "decoded":
            if record.decoded is None:
                raise BadUplinkError(
                    "no_decoded_payload", "the uplink carries no decoded payload (uplinkDocument is 'decoded')"
                )
            document = orjson.dumps(record.decoded)
        elif record.lns == "thingpark":
            if mode == "thingpark":
                document = record.raw if record.raw is not None else orjson.dumps(record.source)
            else:
                document = orjson.dumps(record.source["DevEUI_uplink"])
        elif mode == "thingpark":
            document = orjson.dumps({"DevEUI_uplink": record.thingpark_form()})
        else:
            document = orjson.dumps(record.thingpark_form())
        if len(document) > MAX_DOCUMENT_BYTES:
            raise BadUplinkError(
                "too_large", f"the document is {len(document)} bytes; AWS IoT takes at most {MAX_DOCUMENT_BYTES}"
            )
        return document
