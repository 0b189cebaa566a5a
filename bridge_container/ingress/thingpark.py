"""ThingPark: ``{"DevEUI_uplink": {...}}`` and the downlink reports, with their query parameters and Token check.

ThingPark signs each message it posts with ``Token = SHA-256 hex of (<body values> + <query string before
"&Token"> + <AS key>)``, the body values concatenated as they appear in the document, an absent one as nothing:

* ``DevEUI_uplink``: CustomerID, DevEUI, FPort, FCntUp, payload_hex;
* ``DevEUI_downlink_Sent`` and ``DevEUI_downlink_Rejected``: CustomerID, DevEUI, FPort, FCntDn;
* ``DevEUI_notification`` and ``DevEUI_location`` (they carry neither port nor counter): CustomerID, DevEUI.

The AS key is 32 hex digits, used in lower case (the configuration normalises it). ``Time`` (a query parameter,
covered by the Token) bounds a replay: it must carry a zone and lie within ``maxTimeDriftSecs`` of our clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, AnyStr, Final
from urllib.parse import unquote

from bridge_container.ingress.exceptions import BadUplinkError, InvalidFieldError, UnauthorizedError
from bridge_container.ingress.fields import (
    dev_addr,
    dev_eui,
    fport,
    frame_counter,
    hex_payload,
    optional_float,
    optional_str,
    parse_timestamp,
    require_port_for_payload,
    timestamp,
)
from bridge_container.ingress.record import UplinkRecord

UPLINK_ROOT: Final = "DevEUI_uplink"
SENT_ROOT: Final = "DevEUI_downlink_Sent"
REJECTED_ROOT: Final = "DevEUI_downlink_Rejected"
NOTIFICATION_ROOT: Final = "DevEUI_notification"
LOCATION_ROOT: Final = "DevEUI_location"
REPORT_ROOTS: Final = frozenset({SENT_ROOT, REJECTED_ROOT})
EVENT_ROOTS: Final = frozenset({NOTIFICATION_ROOT, LOCATION_ROOT})
SIGNED_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    UPLINK_ROOT: ("CustomerID", "DevEUI", "FPort", "FCntUp", "payload_hex"),
    SENT_ROOT: ("CustomerID", "DevEUI", "FPort", "FCntDn"),
    REJECTED_ROOT: ("CustomerID", "DevEUI", "FPort", "FCntDn"),
    NOTIFICATION_ROOT: ("CustomerID", "DevEUI"),
    LOCATION_ROOT: ("CustomerID", "DevEUI"),
}
_TOKEN_MARKER: Final = b"&Token="
_TOKEN_HEX_DIGITS: Final = 64
_MISMATCH: Final = "the Token does not match the message and the AS key"


def root_of(document: object) -> str:
    """The document's ThingPark root (``DevEUI_uplink``, a downlink report, ...); 400 when it has none."""
    if isinstance(document, dict):
        if UPLINK_ROOT in document:
            return UPLINK_ROOT
        for key in document:
            if isinstance(key, str) and key.startswith("DevEUI_"):
                return key
    raise BadUplinkError("malformed", 'not a ThingPark document: expected {"DevEUI_uplink": {...}}')


def inner_of(document: dict[str, Any], root: str) -> dict[str, Any]:
    inner = document[root]
    if not isinstance(inner, dict):
        raise BadUplinkError("malformed", f"{root} must be an object", field=root)
    return inner


def parse_uplink(document: dict[str, Any], raw: bytes | None) -> UplinkRecord:
    uplink = inner_of(document, UPLINK_ROOT)
    port = fport(uplink.get("FPort"), "DevEUI_uplink.FPort")
    payload_hex = hex_payload(uplink.get("payload_hex"), "DevEUI_uplink.payload_hex")
    require_port_for_payload(port, payload_hex, "DevEUI_uplink.FPort")
    return UplinkRecord(
        lns="thingpark",
        dev_eui=dev_eui(uplink.get("DevEUI"), "DevEUI_uplink.DevEUI"),
        source=document,
        raw=raw,
        fport=port,
        fcnt_up=frame_counter(uplink.get("FCntUp"), "DevEUI_uplink.FCntUp"),
        dev_addr=dev_addr(uplink.get("DevAddr"), "DevEUI_uplink.DevAddr"),
        time=timestamp(uplink.get("Time"), "DevEUI_uplink.Time"),
        payload_hex=payload_hex,
        decoded=uplink.get("payload"),
        rssi=optional_float(uplink.get("LrrRSSI")),
        snr=optional_float(uplink.get("LrrSNR")),
    )


def check_report(root: str, report: Mapping[str, Any]) -> None:
    """The fields of a downlink report that the feedback relies on."""
    dev_eui(report.get("DevEUI"), f"{root}.DevEUI")
    frame_counter(report.get("FCntDn"), f"{root}.FCntDn")
    optional_str(report.get("CorrelationID"), f"{root}.CorrelationID")
    timestamp(report.get("Time"), f"{root}.Time")


def query_value(query: bytes, name: bytes) -> str | None:
    """The first value of parameter ``name`` in a raw query string, percent-decoded (the rest is not parsed)."""
    value = _parameter(query, name + b"=", b"&")
    return None if value is None else unquote(value.decode("latin-1"))


def _parameter(query: AnyStr, key: AnyStr, separator: AnyStr) -> AnyStr | None:
    """The value after the first ``key`` (``name=``) that starts the query or follows ``separator``."""
    if query.startswith(key):
        start = len(key)
    else:
        found = query.find(separator + key)
        if found < 0:
            return None
        start = found + len(separator) + len(key)
    end = query.find(separator, start)
    return query[start:] if end < 0 else query[start:end]


def check_query_dev_eui(query: bytes, record: UplinkRecord) -> None:
    """``LrnDevEui`` in the query, when present, must name the document's device."""
    if not query:
        return
    named = _parameter(query, b"LrnDevEui=", b"&")
    if named is None:
        return
    if named.upper() != record.dev_eui.encode() and unquote(named.decode("latin-1")).upper() != record.dev_eui:
        raise InvalidFieldError("LrnDevEui", "differs from DevEUI in the document", reason="invalid_deveui")


def expected_token(root: str, inner: Mapping[str, Any], signed_query: str, as_key: str) -> str:
    """The Token ThingPark computes for the ``root`` message ``inner`` and the query string before ``&Token``."""
    return hashlib.sha256(_signed_values(root, inner) + (signed_query + as_key).encode()).hexdigest()


def _signed_values(root: str, inner: Mapping[str, Any]) -> bytes:
    """The message's signed values as ThingPark concatenates them (an absent one as nothing)."""
    return "".join("" if (value := inner.get(name)) is None else str(value) for name in SIGNED_FIELDS[root]).encode()


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request whose Token verified, when (epoch seconds), and the time after which it cannot verify again."""

    token: str
    verified_at: float
    expires_at: float


def verify_token(
    root: str, inner: Mapping[str, Any], query: bytes, as_key: str, max_drift_secs: float, now: dt.datetime
) -> SignedRequest:
    """Raise :class:`UnauthorizedError` unless the Token matches and ``Time`` is within the drift."""
    marker = query.find(_TOKEN_MARKER)
    if marker < 0:
        raise UnauthorizedError(
            "token_missing", "the query has no Token (ThingPark's AS key is configured)", field="Token"
        )
    signed = query[:marker].decode("latin-1")
    received = query[marker + len(_TOKEN_MARKER) :].split(b"&", 1)[0].decode("latin-1").lower()
    if len(received) != _TOKEN_HEX_DIGITS:
        raise UnauthorizedError("token_mismatch", _MISMATCH, field="Token")
    # ThingPark signs the values unencoded (as its downlink API does) and sends them percent-encoded; a query signed
    # as it travels is accepted too (a proxy may have re-encoded it). The decoded form is tried first.
    decoded = unquote(signed)
    body_digest = hashlib.sha256(_signed_values(root, inner))
    tail = as_key.encode()
    for text in (decoded,) if decoded == signed else (decoded, signed):
        digest = body_digest.copy()
        digest.update(text.encode() + tail)
        if hmac.compare_digest(received, digest.hexdigest()):
            break
    else:
        raise UnauthorizedError("token_mismatch", _MISMATCH, field="Token")
    # The query is ThingPark's own (its Token verified), so Time is read from its decoded form.
    time_text = _parameter(decoded, "Time=", "&")
    if time_text is None:
        raise UnauthorizedError("time_missing", "the query has no Time", field="Time")
    try:
        sent = parse_timestamp(time_text.replace(" ", "+"), "Time")  # an unencoded '+' arrives as a space
    except InvalidFieldError as exc:
        raise UnauthorizedError("time_invalid", f"Time {exc.problem}", field="Time") from None
    if abs((now - sent).total_seconds()) > max_drift_secs:
        raise UnauthorizedError(
            "time_drift", f"Time is more than {max_drift_secs:g}s away from the bridge's clock", field="Time"
        )
    return SignedRequest(received, now.timestamp(), sent.timestamp() + max_drift_secs)
