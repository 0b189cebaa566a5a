"""DevEUI validation and normalisation: 16 hex digits, upper case."""

from __future__ import annotations

import re

from bridge_domain.exceptions import InvalidDevEuiError

_DEVEUI_RE = re.compile(r"[0-9A-Fa-f]{16}")


def normalise_dev_eui(value: object) -> str:
    """Return ``value`` as an upper-case 16-hex-digit DevEUI, or raise :class:`InvalidDevEuiError`."""
    if not isinstance(value, str) or _DEVEUI_RE.fullmatch(value) is None:
        raise InvalidDevEuiError(f"DevEUI must be 16 hexadecimal digits, got {value!r:.40}")
    return value.upper()


def is_dev_eui(value: object) -> bool:
    """True when ``value`` is a valid DevEUI (any case)."""
    return isinstance(value, str) and _DEVEUI_RE.fullmatch(value) is not None
