"""Downlinks: MQTT shared subscription → validated document → network server API, with feedback topics."""

from bridge_container.downlink.documents import DownlinkRequest, parse_downlink
from bridge_container.downlink.exceptions import (
    DocumentError,
    DownlinkError,
    LnsError,
    LnsRejectedError,
    LnsUnavailableError,
    NoLnsError,
)
from bridge_container.downlink.reasons import FailureReason, FeedbackStatus
from bridge_container.downlink.service import DownlinkService, DownlinkSettings

__all__ = [
    "DocumentError",
    "DownlinkError",
    "DownlinkRequest",
    "DownlinkService",
    "DownlinkSettings",
    "FailureReason",
    "FeedbackStatus",
    "LnsError",
    "LnsRejectedError",
    "LnsUnavailableError",
    "NoLnsError",
    "parse_downlink",
]
