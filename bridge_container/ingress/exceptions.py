"""Why ingress refuses a request; each error carries its HTTP status and a short machine-readable reason.

Under the service's :class:`~bridge_container.exceptions.BridgeError`::

IngressError
├── BadUplinkError             400: malformed JSON, not an uplink, topic injection, ...
│   └── InvalidFieldError      400: one field fails its check (DevEUI, FPort, payload, counter, time, ...)
├── UnauthorizedError          401: no or wrong Token / Authorization header, Time missing or outside the drift
├── ReplayedError              403: a signed request that was already accepted
├── PayloadTooLargeError       413: the request body or the document to publish is larger than the bound
├── UnsupportedMediaTypeError  415: the Content-Type is not JSON (or NDJSON for a batch)
└── ReplayCacheFullError       503: the replay cache holds its maximum of live tokens; retry later
"""

from __future__ import annotations

from typing import ClassVar

from bridge_container.exceptions import BridgeError


class IngressError(BridgeError):
    """A refused request; ``reason`` is a short code (also the metric label), the message says why.

    ``field`` names the offending field as the LNS document spells it (``DevEUI_uplink.payload_hex``), when one
    field is to blame. Messages never contain a secret or the value that was refused.
    """

    status: ClassVar[int] = 400
    retry_after_secs: int | None = None

    def __init__(self, reason: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.field = field


class BadUplinkError(IngressError):
    status = 400


class InvalidFieldError(BadUplinkError):
    """One field of the document is not what LoRaWAN or the LNS's format allows."""

    def __init__(self, field: str, problem: str, *, reason: str = "invalid_field") -> None:
        super().__init__(reason, f"{field}: {problem}", field=field)
        self.problem = problem


class UnauthorizedError(IngressError):
    status = 401


class ReplayedError(IngressError):
    status = 403


class PayloadTooLargeError(IngressError):
    status = 413


class UnsupportedMediaTypeError(IngressError):
    status = 415


class ReplayCacheFullError(IngressError):
    status = 503

    def __init__(self, retry_after_secs: int) -> None:
        super().__init__(
            "replay_cache_full", "too many signed requests are within their validity to remember another; retry later"
        )
        self.retry_after_secs = retry_after_secs
