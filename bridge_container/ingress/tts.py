"""The Things Stack v3 webhooks: ``uplink_message`` is published; other messages are acknowledged."""

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
    if not isinstance(ids, dict):
        raise BadUplinkError("malformed", "end_device_ids must be an object", field="end_device_ids")
    if not isinstance(message, dict):
        raise BadUplinkError("malformed", "uplink_message must be an object", field=UPLINK_KEY)
    application = ids.get("application_ids")
    port = fport(message.get("f_port"), "uplink_message.f_port")
    payload_hex = base64_payload(message.get("frm_payload"), "uplink_message.frm_payload")
    require_port_for_payload(port, payload_hex, "uplink_message.f_port")
    first_rx = first_object(message.get("rx_metadata"))
    if "received_at" in message:
        time = timestamp(message["received_at"], "uplink_message.received_at")
    else:
        time = timestamp(document.get("received_at"), "received_at")
    return UplinkRecord(
        lns="tts",
        dev_eui=dev_eui(ids.get("dev_eui"), "end_device_ids.dev_eui"),
        source=document,
        raw=raw,
        fport=port,
        fcnt_up=frame_counter(message.get("f_cnt"), "uplink_message.f_cnt"),
        dev_addr=dev_addr(ids.get("dev_addr"), "end_device_ids.dev_addr"),
        application_id=optional_str(application.get("application_id"), "end_device_ids.application_ids.application_id")
        if isinstance(application, dict)
        else None,
        time=time,
        payload_hex=payload_hex,
        decoded=message.get("decoded_payload"),
        rssi=optional_float(first_rx.get("rssi")),
        snr=optional_float(first_rx.get("snr")),
    )
