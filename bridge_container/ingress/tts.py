"""The Things Stack v3 webhooks: ``uplink_message`` is published; other messages are acknowledged."""

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

UPLINK_KEY: Final = "uplink_message"
# The message kinds a TTS webhook can send; anything else is malformed.
OTHER_MESSAGES: Final = frozenset(
    {
        "join_accept",
        "downlink_ack",
        "downlink_nack",
        "downlink_sent",
        "downlink_failed",
        "downlink_queued",
        "downlink_queue_invalidated",
        "location_solved",
        "service_data",
        "uplink_normalized",
    }
)


def message_kind(document: object) -> str:
    if isinstance(document, dict):
        if UPLINK_KEY in document:
            return UPLINK_KEY
        for key in document:
            if key in OTHER_MESSAGES:
                return str(key)
    raise BadUplinkError("malformed", "not a The Things Stack webhook message (no uplink_message)")


def parse_uplink(document: dict[str, Any], raw: bytes | None) -> UplinkRecord:
    ids = document.get("end_device_ids")
    message = document[UPLINK_KEY]
    if not isinstance(ids, dict) or not isinstance(message, dict):
        raise BadUplinkError("malformed", "uplink_message and end_device_ids must be objects")
    application = ids.get("application_ids")
    first_rx = first_object(message.get("rx_metadata"))
    return UplinkRecord(
        lns="tts",
        dev_eui=dev_eui_of(ids.get("dev_eui")),
        source=document,
        raw=raw,
        fport=optional_int(message.get("f_port"), "f_port", MAX_FPORT),
        fcnt_up=optional_int(message.get("f_cnt"), "f_cnt", MAX_FCNT),
        dev_addr=optional_str(ids.get("dev_addr"), "end_device_ids.dev_addr"),
        application_id=optional_str(application.get("application_id"), "application_id")
        if isinstance(application, dict)
        else None,
        time=optional_str(message.get("received_at") or document.get("received_at"), "received_at"),
        payload_base64=optional_str(message.get("frm_payload"), "frm_payload"),
        decoded=message.get("decoded_payload"),
        rssi=optional_float(first_rx.get("rssi")),
        snr=optional_float(first_rx.get("snr")),
    )
