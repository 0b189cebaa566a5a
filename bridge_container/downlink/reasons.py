"""Feedback statuses and failure reasons: the codes subscribers and dashboards see."""

from __future__ import annotations

from enum import StrEnum


class FeedbackStatus(StrEnum):
    """Last topic level of a feedback message (``<downlink topic>/<status>``)."""

    QUEUED = "queued"  # the network server accepted the downlink into the device's queue
    SENT = "sent"  # transmitted (ThingPark DevEUI_downlink_Sent, ChirpStack txack, TTS downlink_sent)
    ACKNOWLEDGED = "acknowledged"  # the device confirmed a confirmed downlink (ChirpStack ack, TTS downlink_ack)
    NACKED = "nacked"  # a confirmed downlink got no confirmation (ChirpStack ack without acknowledged, TTS nack)
    # Not sent because its validity ended: seen by the bridge (MQTT 5 message expiry, ValidityTime, validUntil)
    # before its turn came, or reported by the network server (ChirpStack log EXPIRED).
    EXPIRED = "expired"
    FAILED = "failed"  # see FailureReason


class FailureReason(StrEnum):
    """Why a downlink failed; the ``reason`` field of failed feedback and the label of the failed counter."""

    INVALID_DOCUMENT = "invalid_document"
    NO_LNS = "no_lns"
    QUEUE_FULL = "queue_full"
    LNS_REJECTED = "lns_rejected"
    LNS_UNAVAILABLE = "lns_unavailable"
    LNS_REPORTED_FAILURE = "lns_reported_failure"  # ThingPark Rejected or failed Sent, ChirpStack error log, TTS failed
    SHUTDOWN = "shutdown"
    INTERNAL = "internal"
