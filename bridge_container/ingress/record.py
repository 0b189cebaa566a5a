"""The normalised uplink: one record per uplink whatever the LNS, rendered to the configured topic and document."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from bridge_container.ingress.exceptions import BadUplinkError, InvalidFieldError, PayloadTooLargeError
from bridge_container.mqtt.port import UserProperties, UserProperty, new_user_property
from bridge_domain.exceptions import TopicError
from bridge_domain.quotas import MAX_PAYLOAD_BYTES
from bridge_domain.topic_keywords import KeywordValueError
from bridge_domain.topics import DEV_EUI_FIELD, TopicPattern

# AWS IoT's largest message payload.
MAX_DOCUMENT_BYTES: Final = MAX_PAYLOAD_BYTES

DocumentMode = Literal["thingpark", "flat", "decoded"]

# MQTT 5 user properties of every publish (the pool adds MessageId), named like the topic placeholders, so that
# AWS IoT rules (get_user_properties('DevEUI')) and consumers route without parsing the payload.
DEV_EUI_PROPERTY: Final = "DevEUI"
LNS_KIND_PROPERTY: Final = "LnsKind"
FPORT_PROPERTY: Final = "FPort"
EVENT_TYPE_PROPERTY: Final = "EventType"
UPLINK_EVENT: Final = "uplink"
# The properties that repeat are made once, not per message: LNS kind and event type of uplinks, every FPort.
_CONSTANT_PROPERTIES: dict[tuple[str, str], UserProperty] = {}
_FPORT_PROPERTIES: Final = tuple(UserProperty(FPORT_PROPERTY, str(fport)) for fport in range(256))


def constant_property(name: str, value: str) -> UserProperty:
    """A user property shared by every message that carries it (``LnsKind=tts``, ``EventType=uplink``)."""
    key = (name, value)
    found = _CONSTANT_PROPERTIES.get(key)
    if found is None:
        found = _CONSTANT_PROPERTIES[key] = UserProperty(name, value)
    return found


_UPLINK_CONSTANTS: Final = {
    lns: (constant_property(LNS_KIND_PROPERTY, lns), constant_property(EVENT_TYPE_PROPERTY, UPLINK_EVENT))
    for lns in ("thingpark", "chirpstack", "tts")
}


@dataclass(slots=True)
class UplinkRecord:
    """What every LNS tells about an uplink, under one set of names (ThingPark's, the topic placeholders').

    Every field was checked by the LNS's parser (``ingress/fields.py``); the frame payload is kept in hex whatever
    encoding the LNS used.
    """

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

    def user_properties(self, event: str = UPLINK_EVENT) -> UserProperties:
        """``DevEUI``, ``LnsKind``, ``EventType`` and ``FPort`` (when it has one) of the record."""
        constants = _UPLINK_CONSTANTS.get(self.lns) if event == UPLINK_EVENT else None
        if constants is None:
            constants = (constant_property(LNS_KIND_PROPERTY, self.lns), constant_property(EVENT_TYPE_PROPERTY, event))
        dev_eui = new_user_property((DEV_EUI_PROPERTY, self.dev_eui))
        fport = self.fport
        if fport is None:
            return (dev_eui, *constants)
        if 0 <= fport < len(_FPORT_PROPERTIES):  # always, for a checked record (1-223)
            return (dev_eui, *constants, _FPORT_PROPERTIES[fport])
        return (dev_eui, *constants, new_user_property((FPORT_PROPERTY, str(fport))))

    def thingpark_form(self) -> dict[str, Any]:
        """The record as the inside of ThingPark's ``DevEUI_uplink`` document (fields it lacks are left out)."""
        # One test per field rather than a loop over pairs: this runs for every ChirpStack and TTS uplink.
        form: dict[str, Any] = {"DevEUI": self.dev_eui}
        if self.time is not None:
            form["Time"] = self.time
        if self.dev_addr is not None:
            form["DevAddr"] = self.dev_addr
        if self.fport is not None:
            form["FPort"] = self.fport
        if self.fcnt_up is not None:
            form["FCntUp"] = self.fcnt_up
        if self.payload_hex is not None:
            form["payload_hex"] = self.payload_hex
        if self.rssi is not None:
            form["LrrRSSI"] = self.rssi
        if self.snr is not None:
            form["LrrSNR"] = self.snr
        if self.decoded is not None:
            form["payload"] = self.decoded
        return form


class UplinkRenderer:
    """Topic and document of a record for one connection; the pattern is parsed once.

    ``prefix`` (Basic Ingest's ``$aws/rules/<rule>/``) goes before every topic; AWS IoT does not count it towards
    the topic's 256 bytes and 7 slashes, so the pattern's own checks hold without it.
    """

    def __init__(self, pattern: TopicPattern, mode: DocumentMode, *, prefix: str = "") -> None:
        self.pattern = pattern
        self.mode = mode
        self.prefix = prefix
        self._head = prefix + pattern.literals[0]
        self._tail = pattern.literals[-1]
        # The way to render is chosen once, so an uplink pays for no test of the pattern's kind.
        self.topic: Callable[[UplinkRecord], str]
        if pattern.names == (DEV_EUI_FIELD,):
            self.topic = self._dev_eui_topic
        elif pattern.has_keywords:
            self.topic = self._keyword_topic
        elif prefix:
            self.topic = self._prefixed_placeholder_topic
        else:
            self.topic = self._placeholder_topic

    def _dev_eui_topic(self, record: UplinkRecord) -> str:
        # The common pattern has only {DevEUI}, already 16 validated hex digits: plain concatenation is safe.
        return self._head + record.dev_eui + self._tail

    def _placeholder_topic(self, record: UplinkRecord) -> str:
        values = {}
        for name in self.pattern.names:
            value = record.topic_value(name)
            if value is None:
                raise BadUplinkError("topic", f"the uplink has no {name} for the topic pattern", field=name)
            values[name] = value
        try:
            return self.pattern.render(values)
        except TopicError as exc:
            raise BadUplinkError("topic", str(exc)) from None

    def _prefixed_placeholder_topic(self, record: UplinkRecord) -> str:
        return self.prefix + self._placeholder_topic(record)

    def _keyword_topic(self, record: UplinkRecord) -> str:
        """ThingPark keywords: paths into the LNS document, with fallbacks; a refusal names the field to blame."""
        try:
            return self.prefix + self.pattern.render_keywords(
                record.topic_value, record.source, thingpark=record.lns == "thingpark"
            )
        except KeywordValueError as exc:
            raise InvalidFieldError(exc.field, exc.problem, reason="topic") from None
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
            raise PayloadTooLargeError(
                "too_large", f"the document is {len(document)} bytes; AWS IoT takes at most {MAX_DOCUMENT_BYTES}"
            )
        return document
