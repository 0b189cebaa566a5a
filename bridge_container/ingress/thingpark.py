"""ThingPark: ``{"DevEUI_uplink": {...}}`` with its query parameters, and the uplink Token check.

ThingPark signs each uplink with ``Token = SHA-256 hex of (CustomerID + DevEUI + FPort + FCntUp + payload_hex +
<query string before "&Token"> + <AS key>)``, the body values as they appear in the document. ``Time`` (a query
parameter) bounds a replay: it must lie within ``maxTimeDriftSecs`` of our clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote

from bridge_container.ingress.exceptions import BadUplinkError, UnauthorizedError
from bridge_container.ingress.record import (
    MAX_FCNT,
    MAX_FPORT,
    UplinkRecord,
    dev_eui_of,
    optional_float,
    optional_int,
    optional_str,
)

UPLINK_ROOT: Final = "DevEUI_uplink"
REPORT_ROOTS: Final = frozenset({"DevEUI_downlink_Sent", "DevEUI_downlink_Rejected"})
_TOKEN_FIELDS: Final = ("CustomerID", "DevEUI", "FPort", "FCntUp", "payload_hex")
_TOKEN_MARKER: Final = b"&Token="


def root_of(document: object) -> str:
    """The document's ThingPark root (``DevEUI_uplink``, a downlink report, ...); 400 when it has none."""
    if isinstance(document, dict):
        if UPLINK_ROOT in document:
            return UPLINK_ROOT
        for key in document:
            if isinstance(key, str) and key.startswith("DevEUI_"):
                return key
    raise BadUplinkError("malformed", 'not a ThingPark document: expected {"DevEUI_uplink": {...}}')


def parse_uplink(document: dict[str, Any], raw: bytes | None) -> UplinkRecord:
    uplink = document[UPLINK_ROOT]
    if not isinstance(uplink, dict):
        raise BadUplinkError("malformed", "DevEUI_uplink must be an object")
    return UplinkRecord(
        lns="thingpark",
        dev_eui=dev_eui_of(uplink.get("DevEUI")),
        source=document,
        raw=raw,
        fport=optional_int(uplink.get("FPort"), "FPort", MAX_FPORT),
        fcnt_up=optional_int(uplink.get("FCntUp"), "FCntUp", MAX_FCNT),
        dev_addr=optional_str(uplink.get("DevAddr"), "DevAddr"),
        time=optional_str(uplink.get("Time"), "Time"),
        payload_hex=optional_str(uplink.get("payload_hex"), "payload_hex"),
        decoded=uplink.get("payload"),
        rssi=optional_float(uplink.get("LrrRSSI")),
        snr=optional_float(uplink.get("LrrSNR")),
    )


def query_value(query: bytes, name: bytes) -> str | None:
    """One parameter of a raw query string, percent-decoded (without parsing the rest)."""
    for part in query.split(b"&"):
        key, _, value = part.partition(b"=")
        if key == name:
            return unquote(value.decode("latin-1"))
    return None


def check_query_dev_eui(query: bytes, record: UplinkRecord) -> None:
    """``LrnDevEui`` in the query, when present, must name the document's device."""
    if not query:
        return
    named = query_value(query, b"LrnDevEui")
    if named is not None and named.upper() != record.dev_eui:
        raise BadUplinkError("invalid_deveui", "LrnDevEui in the query differs from DevEUI in the document")


def expected_token(uplink: Mapping[str, Any], signed_query: str, as_key: str) -> str:
    """The Token ThingPark computes for ``uplink`` and the query string before ``&Token``."""
    body = "".join("" if uplink.get(field) is None else str(uplink.get(field)) for field in _TOKEN_FIELDS)
    return hashlib.sha256((body + signed_query + as_key).encode()).hexdigest()


def verify_token(uplink: Mapping[str, Any], query: bytes, as_key: str, max_drift_secs: float, now: dt.datetime) -> None:
    """Raise :class:`UnauthorizedError` unless the Token matches and ``Time`` is within the drift."""
    marker = query.find(_TOKEN_MARKER)
    if marker < 0:
        raise UnauthorizedError("token", "the query has no Token (an AS key is configured for ThingPark)")
    signed = query[:marker].decode("latin-1")
    received = query[marker + len(_TOKEN_MARKER) :].split(b"&", 1)[0].decode("latin-1").lower()
    # ThingPark signs the query as sent; some proxies re-encode it, so the decoded form is accepted too.
    candidates = {expected_token(uplink, signed, as_key), expected_token(uplink, unquote(signed), as_key)}
    if not any(hmac.compare_digest(received, candidate) for candidate in candidates):
        raise UnauthorizedError("token", "the Token does not match the uplink and the AS key")
    time_text = query_value(query[:marker], b"Time")
    if time_text is None:
        raise UnauthorizedError("time", "the query has no Time")
    try:
        sent = dt.datetime.fromisoformat(time_text.replace(" ", "+"))  # an unencoded '+' arrives as a space
    except ValueError:
        raise UnauthorizedError("time", "Time is not an ISO 8601 timestamp") from None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=dt.UTC)
    if abs((now - sent).total_seconds()) > max_drift_secs:
        raise UnauthorizedError("time", f"Time is more than {max_drift_secs:g}s away from the bridge's clock")
