"""ChirpStack v4 HTTP integration: ``POST ...?event=up`` with the JSON marshaler; other events are acknowledged."""

from __future__ import annotations

from typing import Any, Final

from bridge_container.ingress.exceptions import BadUplinkError
from bridge_container.ingress.record import (
    MAX_FCNT,
    MAX_FPORT,
    UplinkRecord,
    dev_eui_of,
    first_object,
    optional_float,
    optional_int,
    optional_str,
)

UPLINK_EVENT: Final = "up"


def is_uplink(document: dict[str, Any]) -> bool:
    """Without ``?event=``, an event is an uplink when it has a device and a frame counter."""
    return "deviceInfo" in document and "fCnt" in document


def parse_up(document: object, raw: bytes | None) -> UplinkRecord:
    if not isinstance(document, dict):
        raise BadUplinkError("malformed", "a ChirpStack event must be a JSON object")
    info = document.get("deviceInfo")
    if not isinstance(info, dict):
        raise BadUplinkError("malformed", "the up event has no deviceInfo")
    first_rx = first_object(document.get("rxInfo"))
    return UplinkRecord(
        lns="chirpstack",
        dev_eui=dev_eui_of(info.get("devEui")),
        source=document,
        raw=raw,
        fport=optional_int(document.get("fPort"), "fPort", MAX_FPORT),
        fcnt_up=optional_int(document.get("fCnt"), "fCnt", MAX_FCNT),
        dev_addr=optional_str(document.get("devAddr"), "devAddr"),
        application_id=optional_str(info.get("applicationId"), "deviceInfo.applicationId"),
        time=optional_str(document.get("time"), "time"),
        payload_base64=optional_str(document.get("data"), "data"),
        decoded=document.get("object"),
        rssi=optional_float(first_rx.get("rssi")),
        snr=optional_float(first_rx.get("snr")),
    )
