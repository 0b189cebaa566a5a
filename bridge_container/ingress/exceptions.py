"""Why ingress refuses a request; each error carries its HTTP status and a short machine-readable reason.

Under the service's :class:`~bridge_container.exceptions.BridgeError`::

IngressError
├── BadUplinkError        400: malformed JSON, invalid DevEUI, topic injection, document over 128 KB, ...
├── UnauthorizedError     401: token, header secret or time drift check failed
└── PayloadTooLargeError  413: the request body is larger than the endpoint takes
"""

from __future__ import annotations

from typing import ClassVar

from bridge_container.exceptions import BridgeError


class IngressError(BridgeError):
    """A refused request; ``reason`` is a short code (also the metric label), the message says why."""

    status: ClassVar[int] = 400

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class BadUplinkError(IngressError):
    status = 400


class UnauthorizedError(IngressError):
    status = 401


class PayloadTooLargeError(IngressError):
    status = 413
