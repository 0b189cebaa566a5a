"""Errors of the downlink path, under the service's :class:`~bridge_container.exceptions.BridgeError`::

DownlinkError
├── DocumentError        the message on the downlink topic is not a downlink we can send
├── NoLnsError           no network server of the requested kind is configured for downlinks
└── LnsError             the network server did not take the downlink
    ├── LnsRejectedError     it answered 4xx (or another final status): never retried
    └── LnsUnavailableError  5xx, timeout or connection failure, still failing after the retries
"""

from __future__ import annotations

from bridge_container.downlink.reasons import FailureReason
from bridge_container.exceptions import BridgeError


class DownlinkError(BridgeError):
    """Base of every error raised by the downlink path; ``reason`` is the code published as feedback."""

    reason: FailureReason = FailureReason.INTERNAL


class DocumentError(DownlinkError):
    """The downlink document (or the DevEUI in its topic) is invalid."""

    reason = FailureReason.INVALID_DOCUMENT


class NoLnsError(DownlinkError):
    """No network server can take this downlink."""

    reason = FailureReason.NO_LNS


class LnsError(DownlinkError):
    """The network server did not accept the downlink; ``status_code`` is None when no answer came."""

    def __init__(self, message: str, *, status_code: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.attempts = attempts


class LnsRejectedError(LnsError):
    """A final answer such as 400, 401, 403 or 404: retrying would get the same answer."""

    reason = FailureReason.LNS_REJECTED


class LnsUnavailableError(LnsError):
    """5xx, timeouts or connection failures outlasted the retry policy."""

    reason = FailureReason.LNS_UNAVAILABLE
