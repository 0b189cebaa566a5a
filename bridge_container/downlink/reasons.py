"""Feedback statuses and failure reasons: the codes subscribers and dashboards see."""

from __future__ import annotations

from enum import StrEnum


class FeedbackStatus(StrEnum):
    """Last topic level of a feedback message (``<downlink topic>/<status>``)."""

    QUEUED = "queued"  # the network server accepted the downlink into the device's queue
    SENT = "sent"  # the network server reports it transmitted the downlink (ThingPark DevEUI_downlink_Sent)
    FAILED = "failed"  # see FailureReason


class FailureReason(StrEnum):
    """Why a downlink failed; the ``reason`` field of failed feedback and the label of the failed counter."""

    INVALID_DOCUMENT = "invalid_document"
    NO_LNS = "no_lns"
    QUEUE_FULL = "queue_full"
    LNS_REJECTED = "lns_rejected"
    LNS_UNAVAILABLE = "lns_unavailable"
    LNS_REPORTED_FAILURE = "lns_reported_failure"  # ThingPark DevEUI_downlink_Rejected or a failed Sent report
    SHUTDOWN = "shutdown"
    INTERNAL = "internal"
