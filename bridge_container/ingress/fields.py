"""Field checks at the door: LoRaWAN's rules for DevEUI, FPort, frame counters and payloads, and ISO 8601 times.

Each check takes the value as parsed from JSON and the field's name as the LNS document spells it, and raises
:class:`~bridge_container.ingress.exceptions.InvalidFieldError` naming that field (never echoing the value).
The checks are plain Python on the hot path: a compiled regex or one C call each, no model validation.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import re
from typing import Any, Final

from bridge_container.ingress.exceptions import InvalidFieldError
from bridge_domain.deveui import is_dev_eui

MAX_FCNT: Final = 2**32 - 1  # LoRaWAN frame counters are 32-bit
# LoRaWAN 1.0.4 / 1.1, section 4.3.2: FPort 0 is for MAC commands only, 1..223 are application specific, 224 is the
# MAC layer test protocol, 225..255 are reserved for future standardized application extensions.
FIRST_APPLICATION_FPORT: Final = 1
LAST_APPLICATION_FPORT: Final = 223
MAC_COMMANDS_FPORT: Final = 0
TEST_PROTOCOL_FPORT: Final = 224
MAX_FPORT: Final = 255
# ThingPark's "JSON untyped" format sends numbers as strings: at most this many ASCII digits (2**32 - 1 has ten),
# so that int() never sees a string long enough to be costly or refused.
_MAX_INTEGER_DIGITS: Final = 10
_MAX_TIMESTAMP_CHARS: Final = 64
# LoRaWAN DevStatusAns: the margin is a 6-bit signed integer (dB).
MIN_MARGIN_DB: Final = -32
MAX_MARGIN_DB: Final = 31
MAX_TEXT_CHARS: Final = 1024  # an event's free texts (log descriptions, names)
_HEX_DIGITS: Final = re.compile(r"[0-9A-Fa-f]*")
_DEV_ADDR_HEX_DIGITS: Final = 8
_MARGIN_TEXT: Final = re.compile(r"-?[0-9]{1,2}")


def dev_eui(value: object, field: str) -> str:
    """A DevEUI: 16 hex digits, returned in upper case."""
    if isinstance(value, str) and is_dev_eui(value):
        return value.upper()
    raise InvalidFieldError(field, "must be 16 hexadecimal digits", reason="invalid_deveui")


def dev_addr(value: object, field: str) -> str | None:
    """A device address: 4 bytes, 8 hex digits (either case, kept as written); None when absent."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) == _DEV_ADDR_HEX_DIGITS and _HEX_DIGITS.fullmatch(value) is not None:
        return value
    raise InvalidFieldError(field, "must be 8 hexadecimal digits")


def _integer(value: object, field: str, maximum: int) -> int:
    if isinstance(value, str) and 0 < len(value) <= _MAX_INTEGER_DIGITS and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum:
        return value
    raise InvalidFieldError(field, f"must be an integer between 0 and {maximum}")


def frame_counter(value: object, field: str) -> int | None:
    """A frame counter (non-negative, 32-bit); None when absent."""
    if type(value) is int and 0 <= value <= MAX_FCNT:
        return value
    return None if value is None else _integer(value, field, MAX_FCNT)


def fport(value: object, field: str) -> int | None:
    """The FPort of an application uplink: 1..223; None when absent (a frame without FRMPayload has no FPort)."""
    if value is None:
        return None
    port = value if type(value) is int else _integer(value, field, MAX_FPORT)
    if FIRST_APPLICATION_FPORT <= port <= LAST_APPLICATION_FPORT:
        return port
    if port == MAC_COMMANDS_FPORT:
        raise InvalidFieldError(field, "FPort 0 carries MAC commands only, never application data")
    if port == TEST_PROTOCOL_FPORT:
        raise InvalidFieldError(field, "FPort 224 is reserved for the LoRaWAN MAC layer test protocol")
    if TEST_PROTOCOL_FPORT < port <= MAX_FPORT:
        raise InvalidFieldError(field, "FPorts 225-255 are reserved by LoRaWAN")
    raise InvalidFieldError(field, "must be an application FPort between 1 and 223")


def hex_payload(value: object, field: str) -> str | None:
    """A frame payload in hex (either case); None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or _HEX_DIGITS.fullmatch(value) is None:
        raise InvalidFieldError(field, "must be hexadecimal digits")
    if len(value) % 2:
        raise InvalidFieldError(field, "odd number of hex digits")
    return value


def base64_payload(value: object, field: str) -> str | None:
    """A frame payload in (padded, standard-alphabet) base64, returned as hex; None when absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidFieldError(field, "must be a base64 string")
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        raise InvalidFieldError(field, "not valid base64") from None


def require_port_for_payload(port: int | None, payload_hex: str | None, field: str) -> None:
    """A frame that carries FRMPayload has an FPort (LoRaWAN: FPort is present whenever FRMPayload is)."""
    if port is None and payload_hex:
        raise InvalidFieldError(field, "a frame payload needs an FPort")


def timestamp(value: object, field: str) -> str | None:
    """An ISO 8601 date and time with a zone (``Z`` or an offset), kept as written; None when absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidFieldError(field, "must be an ISO 8601 date and time")
    parse_timestamp(value, field)
    return value


def parse_timestamp(value: str, field: str) -> dt.datetime:
    """The aware datetime of an ISO 8601 date and time with a zone.

    A time without a zone is refused: it is local time of an unknown place, so it cannot be compared with the
    bridge's clock (guessing UTC would shift a replay window by the sender's offset).
    """
    if not value or len(value) > _MAX_TIMESTAMP_CHARS:
        raise InvalidFieldError(field, "must be an ISO 8601 date and time")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidFieldError(field, "must be an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise InvalidFieldError(field, "has no time zone: ISO 8601 with Z or an offset is required")
    return moment


def optional_str(value: object, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidFieldError(field, "must be a string")


def first_object(value: object) -> dict[str, Any]:
    """The first element of a list of objects (radio metadata), or an empty dict."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    return {}


def optional_float(value: object) -> float | None:
    """Radio metadata (RSSI, SNR): a number, or None for anything else (it is informative, never refused)."""
    return float(value) if type(value) is float or type(value) is int else None  # not bool, a subclass of int


def json_object(value: object, name: str) -> dict[str, Any]:
    """A JSON object."""
    if isinstance(value, dict):
        return value
    raise InvalidFieldError(name, "must be an object")


def finite_number(value: object, name: str, limit: float | None = None) -> float | None:
    """A finite number (not a boolean), within ±``limit``; None when absent."""
    if value is None:
        return None
    if (type(value) is int or type(value) is float) and math.isfinite(value):
        if limit is None or -limit <= value <= limit:
            return float(value)
        raise InvalidFieldError(name, f"must be between -{limit:g} and {limit:g}")
    raise InvalidFieldError(name, "must be a number")


def link_margin(value: object, name: str) -> int:
    """LoRaWAN DevStatusAns margin: a 6-bit signed integer in dB (ThingPark sends it as a string)."""
    if type(value) is str and _MARGIN_TEXT.fullmatch(value) is not None:
        value = int(value)
    if type(value) is int and MIN_MARGIN_DB <= value <= MAX_MARGIN_DB:
        return value
    raise InvalidFieldError(name, f"must be an integer between {MIN_MARGIN_DB} and {MAX_MARGIN_DB} (dB)")


def flag(value: object, name: str) -> bool:
    """A boolean; absent is false (protobuf's JSON mapping leaves false out)."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise InvalidFieldError(name, "must be true or false")


def bounded_text(value: object, name: str) -> str | None:
    """A string of at most ``MAX_TEXT_CHARS`` characters; None when absent."""
    text = optional_str(value, name)
    if text is not None and len(text) > MAX_TEXT_CHARS:
        raise InvalidFieldError(name, f"is longer than {MAX_TEXT_CHARS} characters")
    return text
