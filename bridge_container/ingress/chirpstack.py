"""ChirpStack v4 HTTP integration: ``POST ...?event=up`` with the JSON marshaler; other events are acknowledged."""

from __future__ import annotations

from typing import Any, Final

from bridge_container.ingress.exceptions import BadUplinkError
from bridge_container.ingress.fields import (
    base64_payload,
    dev_addr,
    dev_eui,
    first_object,
    fport,
    frame_counter,
    optional_float,
    optional_str,
    require_port_for_payload,
    timestamp,
)
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
    port = fport(document.get("fPort"), "fPort")
    payload_hex = base64_payload(document.get("data"), "data")
    require_port_for_payload(port, payload_hex, "fPort")
    first_rx = first_object(document.get("rxInfo"))
    return UplinkRecord(
        lns="chirpstack",
        dev_eui=dev_eui(info.get("devEui"), "deviceInfo.devEui"),
        source=document,
        raw=raw,
        fport=port,
        fcnt_up=frame_counter(document.get("fCnt"), "fCnt"),
        dev_addr=dev_addr(document.get("devAddr"), "devAddr"),
        application_id=optional_str(info.get("applicationId"), "deviceInfo.applicationId"),
        time=timestamp(document.get("time"), "time"),
        payload_hex=payload_hex,
        decoded=document.get("object"),
        rssi=optional_float(first_rx.get("rssi")),
        snr=optional_float(first_rx.get("snr")),
    )
