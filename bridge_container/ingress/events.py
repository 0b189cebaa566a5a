"""Device events beyond uplinks, and ChirpStack's and The Things Stack's reports on downlinks, checked at the door.

Each LNS document is parsed into one of two records:

* :class:`DeviceEvent`: a join, device status, location, log, ... published on the connection's event topic;
* :class:`DownlinkReport`: what the network server says happened to a downlink (sent, acknowledged, ...), handed
  to the connection's downlink service, which publishes it on the feedback topic with the caller's correlation id.

Fields are checked like an uplink's (``fields.py``): a refusal is an
:class:`~bridge_container.ingress.exceptions.InvalidFieldError` naming the field as the LNS spells it.
ChirpStack marshals with protobuf's JSON mapping, which leaves out a field holding its default (0, false, ""):
an absent ``margin`` is 0 and an absent ``acknowledged`` is false.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from bridge_container.ingress.exceptions import BadUplinkError, InvalidFieldError, PayloadTooLargeError
from bridge_container.ingress.fields import (
    bounded_text,
    dev_addr,
    dev_eui,
    finite_number,
    flag,
    frame_counter,
    json_object,
    link_margin,
    timestamp,
)
from bridge_container.ingress.record import (
    DEV_EUI_PROPERTY,
    EVENT_TYPE_PROPERTY,
    LNS_KIND_PROPERTY,
    MAX_DOCUMENT_BYTES,
    constant_property,
)
from bridge_container.ingress.thingpark import LOCATION_ROOT
from bridge_container.mqtt.port import UserProperties, UserProperty
from bridge_domain.deveui import is_dev_eui
from bridge_domain.events import EventKind

# LoRaWAN DevStatusAns: the battery byte is 0 (external power), 1..254 (empty..full) or 255 (cannot measure).
EXTERNAL_POWER: Final = 0
BATTERY_UNKNOWN: Final = 255
_MAX_LATITUDE: Final = 90.0
_MAX_LONGITUDE: Final = 180.0


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """An event about a device, under one set of names whatever the LNS; ``source`` is the LNS document."""

    kind: EventKind
    lns: str
    dev_eui: str
    source: Mapping[str, Any]
    time: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    registers: bool = False  # a join registers the thing like a first uplink

    def document(self) -> bytes:
        """``{"DevEUI", "event", "lns", "time", <normalised fields>, "source"}``, at most AWS IoT's payload size."""
        document: dict[str, Any] = {"DevEUI": self.dev_eui, "event": self.kind.value, "lns": self.lns}
        if self.time is not None:
            document["time"] = self.time
        document.update(self.fields)
        document["source"] = self.source
        payload = orjson.dumps(document)
        if len(payload) > MAX_DOCUMENT_BYTES:
            raise PayloadTooLargeError(
                "too_large", f"the event document is {len(payload)} bytes; AWS IoT takes at most {MAX_DOCUMENT_BYTES}"
            )
        return payload

    def user_properties(self) -> UserProperties:
        """``DevEUI``, ``LnsKind`` and ``EventType`` (its kind), as on an uplink; the pool adds ``MessageId``."""
        return (
            UserProperty(DEV_EUI_PROPERTY, self.dev_eui),
            constant_property(LNS_KIND_PROPERTY, self.lns),
            constant_property(EVENT_TYPE_PROPERTY, self.kind.value),
        )


@dataclass(frozen=True, slots=True)
class DownlinkReport:
    """A network server's report on one downlink: its new ``status`` (a feedback status) and how to find it.

    ``reference`` is the network server's id of the downlink (ChirpStack's queue-item id); ``correlation_ids``
    are the ids the downlink was sent with, as the network server echoes them (The Things Stack).
    """

    lns: str
    dev_eui: str
    status: str
    report: Mapping[str, Any]
    reference: str | None = None
    correlation_ids: tuple[str, ...] = ()
    detail: str | None = None


# --- field checks -------------------------------------------------------------------------------------------------
def _location(location: Mapping[str, Any], prefix: str, names: tuple[str, str, str, str, str]) -> dict[str, Any]:
    """Latitude and longitude (required, in range), altitude, accuracy (metres) and source, under our names."""
    lat_name, lon_name, alt_name, accuracy_name, source_name = names
    latitude = finite_number(location.get(lat_name), prefix + lat_name, _MAX_LATITUDE)
    longitude = finite_number(location.get(lon_name), prefix + lon_name, _MAX_LONGITUDE)
    if latitude is None:
        raise InvalidFieldError(prefix + lat_name, "is required")
    if longitude is None:
        raise InvalidFieldError(prefix + lon_name, "is required")
    fields: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    altitude = finite_number(location.get(alt_name), prefix + alt_name)
    accuracy = finite_number(location.get(accuracy_name), prefix + accuracy_name)
    raw_source = location.get(source_name)
    source = str(raw_source) if type(raw_source) is int else bounded_text(raw_source, prefix + source_name)
    if altitude is not None:
        fields["altitude"] = altitude
    if accuracy is not None:
        if accuracy < 0:
            raise InvalidFieldError(prefix + accuracy_name, "must not be negative")
        fields["accuracy"] = accuracy
    if source is not None:
        fields["locationSource"] = source  # "source" is the LNS document
    return fields


def battery_percent(level: int) -> float | None:
    """LoRaWAN's battery byte as a percentage (1 → 0 %, 254 → 100 %); None for external power or unknown."""
    if level in (EXTERNAL_POWER, BATTERY_UNKNOWN):
        return None
    return round((level - 1) * 100 / 253, 1)


# --- ChirpStack v4 ------------------------------------------------------------------------------------------------
CHIRPSTACK_EVENTS: Final = frozenset({"join", "status", "location", "log", "txack", "ack"})
# Log codes about a downlink (ChirpStack discards the queue item): EXPIRED is its validity ending.
_CHIRPSTACK_DOWNLINK_LOG_CODES: Final = frozenset(
    {"EXPIRED", "DOWNLINK_PAYLOAD_SIZE", "DOWNLINK_CODEC", "DOWNLINK_GATEWAY", "F_CNT_DOWN"}
)
_CHIRPSTACK_LOG_LEVELS: Final = frozenset({"INFO", "WARNING", "ERROR"})


def parse_chirpstack(event: str, document: object) -> DeviceEvent | DownlinkReport:
    """A ChirpStack ``join``, ``status``, ``location``, ``log``, ``txack`` or ``ack`` event."""
    if not isinstance(document, dict):
        raise BadUplinkError("malformed", "a ChirpStack event must be a JSON object")
    info = document.get("deviceInfo")
    if not isinstance(info, dict):
        raise BadUplinkError("malformed", f"the {event} event has no deviceInfo object", field="deviceInfo")
    eui = dev_eui(info.get("devEui"), "deviceInfo.devEui")
    time = timestamp(document.get("time"), "time")
    fields: dict[str, Any]
    if event == "join":
        address = dev_addr(document.get("devAddr"), "devAddr")
        fields = {} if address is None else {"devAddr": address}
        return DeviceEvent(EventKind.JOIN, "chirpstack", eui, document, time, fields, registers=True)
    if event == "status":
        external = flag(document.get("externalPowerSource"), "externalPowerSource")
        unavailable = flag(document.get("batteryLevelUnavailable"), "batteryLevelUnavailable")
        level = finite_number(document.get("batteryLevel", 0), "batteryLevel")
        if level is not None and not 0 <= level <= 100:
            raise InvalidFieldError("batteryLevel", "must be a percentage between 0 and 100")
        status = {
            "battery": None if external or unavailable else level,
            "externalPower": external,
            "margin": link_margin(document.get("margin", 0), "margin"),
        }
        return DeviceEvent(EventKind.STATUS, "chirpstack", eui, document, time, status)
    if event == "location":
        location = json_object(document.get("location"), "location")
        fields = _location(location, "location.", ("latitude", "longitude", "altitude", "accuracy", "source"))
        return DeviceEvent(EventKind.LOCATION, "chirpstack", eui, document, time, fields)
    if event == "txack":
        return DownlinkReport("chirpstack", eui, "sent", document, _queue_item(document.get("queueItemId")))
    if event == "ack":
        acknowledged = flag(document.get("acknowledged"), "acknowledged")
        reference = _queue_item(document.get("queueItemId"))
        return DownlinkReport("chirpstack", eui, "acknowledged" if acknowledged else "nacked", document, reference)
    return _chirpstack_log(document, eui, time)


def _queue_item(value: object, name: str = "queueItemId") -> str:
    text = bounded_text(value, name)
    if not text:
        raise InvalidFieldError(name, "is required (the downlink's queue-item id)")
    return text


def _chirpstack_log(document: dict[str, Any], eui: str, time: str | None) -> DeviceEvent | DownlinkReport:
    level = bounded_text(document.get("level", "INFO"), "level")
    if level not in _CHIRPSTACK_LOG_LEVELS:
        raise InvalidFieldError("level", "must be INFO, WARNING or ERROR")
    code = bounded_text(document.get("code", "UNKNOWN"), "code") or "UNKNOWN"
    description = bounded_text(document.get("description"), "description")
    context = json_object(document.get("context", {}), "context")
    for key, value in context.items():
        bounded_text(value, f"context.{key}")
    if code in _CHIRPSTACK_DOWNLINK_LOG_CODES:
        queue_item = context.get("queue_item_id")
        reference = None if queue_item is None else _queue_item(queue_item, "context.queue_item_id")
        status = "expired" if code == "EXPIRED" else "failed"
        return DownlinkReport("chirpstack", eui, status, document, reference, detail=f"{code}: {description or ''}")
    fields = {"level": level, "code": code, "description": description}
    return DeviceEvent(EventKind.LOG, "chirpstack", eui, document, time, fields)


# --- The Things Stack v3 ------------------------------------------------------------------------------------------
TTS_DOWNLINK_STATUSES: Final[Mapping[str, str]] = {
    "downlink_queued": "queued",
    "downlink_sent": "sent",
    "downlink_ack": "acknowledged",
    "downlink_nack": "nacked",
    "downlink_failed": "failed",
}
TTS_EVENTS: Final[Mapping[str, EventKind]] = {
    "join_accept": EventKind.JOIN,
    "location_solved": EventKind.LOCATION,
    "service_data": EventKind.SERVICE,
    "uplink_normalized": EventKind.NORMALIZED,
}


def tts_dev_eui(document: Mapping[str, Any], device_id_prefix: str) -> str:
    """``end_device_ids.dev_eui``, or the DevEUI in ``device_id`` (``<prefix><dev eui>``) when it is left out.

    The Things Stack leaves the DevEUI out of some messages (``downlink_failed``); the bridge names devices
    ``<deviceIdPrefix><lower-case DevEUI>`` when it sends them downlinks.
    """
    ids = json_object(document.get("end_device_ids"), "end_device_ids")
    if "dev_eui" in ids:
        return dev_eui(ids["dev_eui"], "end_device_ids.dev_eui")
    device_id = ids.get("device_id")
    if isinstance(device_id, str) and device_id.startswith(device_id_prefix):
        candidate = device_id[len(device_id_prefix) :]
        if is_dev_eui(candidate):
            return candidate.upper()
    raise InvalidFieldError("end_device_ids.dev_eui", "is required (device_id does not hold the DevEUI either)")


def parse_tts(kind: str, document: dict[str, Any], device_id_prefix: str) -> DeviceEvent | DownlinkReport:
    """A TTS webhook message other than ``uplink_message`` that the bridge carries (see the two maps above)."""
    eui = tts_dev_eui(document, device_id_prefix)
    message = json_object(document.get(kind), kind)
    time = timestamp(document.get("received_at"), "received_at")
    status = TTS_DOWNLINK_STATUSES.get(kind)
    if status is not None:
        downlink = json_object(message.get("downlink"), f"{kind}.downlink") if kind == "downlink_failed" else message
        prefix = f"{kind}.downlink." if kind == "downlink_failed" else f"{kind}."
        ids = downlink.get("correlation_ids", [])
        if not isinstance(ids, list) or not all(isinstance(item, str) for item in ids):
            raise InvalidFieldError(prefix + "correlation_ids", "must be a list of strings")
        frame_counter(downlink.get("f_cnt"), prefix + "f_cnt")
        detail = None
        if kind == "downlink_failed":
            error = json_object(message.get("error", {}), f"{kind}.error")
            name = bounded_text(error.get("name"), f"{kind}.error.name")
            text = bounded_text(error.get("message_format"), f"{kind}.error.message_format")
            detail = ": ".join(part for part in (name, text) if part) or "The Things Stack reported downlink_failed"
        return DownlinkReport("tts", eui, status, document, correlation_ids=tuple(ids), detail=detail)
    event = TTS_EVENTS[kind]
    fields: dict[str, Any]
    if event is EventKind.JOIN:
        device_ids = json_object(document.get("end_device_ids"), "end_device_ids")
        address = dev_addr(device_ids.get("dev_addr"), "end_device_ids.dev_addr")
        fields = {} if address is None else {"devAddr": address}
        return DeviceEvent(event, "tts", eui, document, time, fields, registers=True)
    if event is EventKind.LOCATION:
        location = json_object(message.get("location"), f"{kind}.location")
        names = ("latitude", "longitude", "altitude", "accuracy", "source")
        fields = _location(location, f"{kind}.location.", names)
        service = bounded_text(message.get("service"), f"{kind}.service")
        if service is not None:
            fields["service"] = service
        return DeviceEvent(event, "tts", eui, document, time, fields)
    if event is EventKind.SERVICE:
        service = bounded_text(message.get("service"), f"{kind}.service")
        data = json_object(message.get("data", {}), f"{kind}.data")
        return DeviceEvent(event, "tts", eui, document, time, {"service": service, "data": data})
    normalized = message.get("normalized_payload")
    if not isinstance(normalized, list) or not all(isinstance(item, dict) for item in normalized):
        raise InvalidFieldError(f"{kind}.normalized_payload", "must be a list of objects")
    return DeviceEvent(event, "tts", eui, document, time, {"normalizedPayload": normalized})


# --- ThingPark ----------------------------------------------------------------------------------------------------
_BATTERY_DIGITS: Final = 3


def parse_thingpark(root: str, document: dict[str, Any]) -> DeviceEvent | None:
    """``DevEUI_notification`` (join, devstatusans) or ``DevEUI_location``; None for a notification not carried."""
    inner = json_object(document.get(root), root)
    eui = dev_eui(inner.get("DevEUI"), f"{root}.DevEUI")
    time = timestamp(inner.get("Time"), f"{root}.Time")
    fields: dict[str, Any]
    if root == LOCATION_ROOT:
        names = ("DevLAT", "DevLON", "DevAlt", "DevLocRadius", "NwGeolocAlgo")
        fields = _location(inner, f"{root}.", names)
        return DeviceEvent(EventKind.LOCATION, "thingpark", eui, document, time, fields)
    kind = bounded_text(inner.get("Type"), f"{root}.Type")
    if kind == "join":
        address = dev_addr(inner.get("DevAddr"), f"{root}.DevAddr")
        fields = {} if address is None else {"devAddr": address}
        return DeviceEvent(EventKind.JOIN, "thingpark", eui, document, time, fields, registers=True)
    if kind == "devstatusans":
        level = _battery_byte(inner.get("Var1"), f"{root}.Var1")
        fields = {
            "battery": battery_percent(level),
            "externalPower": level == EXTERNAL_POWER,
            "margin": link_margin(inner.get("Var2"), f"{root}.Var2"),
        }
        return DeviceEvent(EventKind.STATUS, "thingpark", eui, document, time, fields)
    return None


def _battery_byte(value: object, name: str) -> int:
    if type(value) is str and 0 < len(value) <= _BATTERY_DIGITS and value.isascii() and value.isdigit():
        value = int(value)
    if type(value) is int and 0 <= value <= BATTERY_UNKNOWN:
        return value
    raise InvalidFieldError(name, "must be the LoRaWAN battery byte, an integer between 0 and 255")
