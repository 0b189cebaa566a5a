"""ChirpStack v4 HTTP integration: ``POST ...?event=up`` with the JSON marshaler; other events are acknowledged."""

from __future__ import annotations

from typing import Any, Final

from bridge_container.ingress import fields
from bridge_container.ingress.exceptions import BadUplinkError
from bridge_container.ingress.record import UplinkRecord

UPLINK_EVENT: Final = "up"


def is_uplink(document: dict[str, Any]) -> bool:
    """Without ``?event=``, an event is an uplink when it has a device and a frame counter."""
    return "deviceInfo" in document and "fCnt" in document


def parse_up(document: object, raw: bytes | None) -> UplinkRecord:
    if not isinstance(document, dict):
        raise BadUplinkError("malformed", "a ChirpStack event must be a JSON object")
    info = document.get("deviceInfo")
    if not isinstance(info, dict):
        raise BadUplinkError("malformed", "the up event has no deviceInfo object", field="deviceInfo")
    port = fields.fport(document.get("fPort"), "fPort")
    payload_hex = fields.base64_payload(document.get("data"), "data")
    fields.require_port_for_payload(port, payload_hex, "fPort")
    first_rx = fields.first_object(document.get("rxInfo"))
    return UplinkRecord(
        lns="chirpstack",
        dev_eui=fields.dev_eui(info.get("devEui"), "deviceInfo.devEui"),
        source=document,
        raw=raw,
        fport=port,
        fcnt_up=fields.frame_counter(document.get("fCnt"), "fCnt"),
        dev_addr=fields.dev_addr(document.get("devAddr"), "devAddr"),
        application_id=fields.optional_str(info.get("applicationId"), "deviceInfo.applicationId"),
        time=fields.timestamp(document.get("time"), "time"),
        payload_hex=payload_hex,
        decoded=document.get("object"),
        rssi=fields.optional_float(first_rx.get("rssi")),
        snr=fields.optional_float(first_rx.get("snr")),
    )
