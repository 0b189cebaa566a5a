"""ChirpStack's and The Things Stack's reports on a downlink, published on its feedback topic.

They reach the bridge on the uplink ingress (ChirpStack ``txack``, ``ack`` and downlink ``log`` events; TTS
``downlink_queued``, ``downlink_sent``, ``downlink_ack``, ``downlink_nack`` and ``downlink_failed`` messages),
authenticated and checked there; each is a feedback status. The correlation id is the caller's: for ChirpStack the
one remembered with the queue-item id when the downlink was enqueued, for TTS the one the bridge sent among the
downlink's ``correlation_ids`` (``aws-iot-bridge:<id>``), which TTS echoes.
"""

from __future__ import annotations

from bridge_container.downlink.correlation import CorrelationIds
from bridge_container.downlink.feedback import Feedback, FeedbackPublisher
from bridge_container.downlink.metrics import DownlinkMetrics
from bridge_container.downlink.reasons import FailureReason, FeedbackStatus
from bridge_container.downlink.tts import CORRELATION_PREFIX
from bridge_container.ingress.events import DownlinkReport


class LifecycleReports:
    """The ChirpStack and TTS report handler of one connection."""

    def __init__(self, feedback: FeedbackPublisher, metrics: DownlinkMetrics, correlation_ids: CorrelationIds) -> None:
        self._feedback = feedback
        self._metrics = metrics
        self._correlation_ids = correlation_ids

    def __call__(self, report: DownlinkReport) -> None:
        status = FeedbackStatus(report.status)
        reason = FailureReason.LNS_REPORTED_FAILURE if status is FeedbackStatus.FAILED else None
        if reason is not None:
            self._metrics.failed(reason)
        self._feedback.emit(
            Feedback(
                dev_eui=report.dev_eui,
                status=status,
                correlation_id=self.correlation_id(report),
                reason=reason,
                detail=report.detail,
                lns=report.lns,
                lns_reference=report.reference,
                report=report.report,
            )
        )

    def correlation_id(self, report: DownlinkReport) -> str | None:
        """The caller's correlation id of the downlink, when this task can tell it."""
        for candidate in report.correlation_ids:
            if candidate.startswith(CORRELATION_PREFIX):
                return candidate[len(CORRELATION_PREFIX) :]
        if report.reference is not None:
            return self._correlation_ids.lookup(report.reference)
        return None
