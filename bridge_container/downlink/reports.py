"""ThingPark's downlink reports (``DevEUI_downlink_Sent``, ``DevEUI_downlink_Rejected``) turned into feedback.

They reach the bridge on the uplink ingress (``POST /uplinks/thingpark``), which hands them to the connection's
report handler: a callable ``(kind, body)``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bridge_container.downlink.correlation import CorrelationIds
from bridge_container.downlink.feedback import Feedback, FeedbackPublisher
from bridge_container.downlink.metrics import DownlinkMetrics
from bridge_container.downlink.reasons import FailureReason, FeedbackStatus
from bridge_domain.deveui import is_dev_eui, normalise_dev_eui

logger = logging.getLogger(__name__)

SENT_REPORT = "DevEUI_downlink_Sent"
REJECTED_REPORT = "DevEUI_downlink_Rejected"
REPORT_KINDS = (SENT_REPORT, REJECTED_REPORT)
_SUCCESS_DELIVERY_STATUSES = (None, 1, "1")
_CAUSE_FIELDS = ("DeliveryFailedCause1", "DeliveryFailedCause2", "DeliveryFailedCause3", "DownlinkRejectionCause")


class ThingParkReports:
    """The ThingPark report handler of one connection."""

    def __init__(
        self, feedback: FeedbackPublisher, metrics: DownlinkMetrics, correlation_ids: CorrelationIds | None = None
    ) -> None:
        self._feedback = feedback
        self._metrics = metrics
        self._correlation_ids = correlation_ids

    async def __call__(self, kind: str, body: Mapping[str, Any]) -> None:
        """Publish the report on the device's ``sent`` or ``failed`` feedback topic; ignore what is not a report."""
        inner = body.get(kind, body)
        report: Mapping[str, Any] = inner if isinstance(inner, Mapping) else body
        dev_eui = report.get("DevEUI")
        if kind not in REPORT_KINDS or not is_dev_eui(dev_eui):
            logger.warning("ThingPark %s report without a valid DevEUI ignored", kind)
            return
        thingpark_id = report.get("CorrelationID")
        correlation_id = None
        if isinstance(thingpark_id, str) and thingpark_id:
            correlation_id = (
                self._correlation_ids.resolve(thingpark_id) if self._correlation_ids is not None else thingpark_id
            )
        succeeded = kind == SENT_REPORT and report.get("DeliveryStatus") in _SUCCESS_DELIVERY_STATUSES
        reason = None if succeeded else FailureReason.LNS_REPORTED_FAILURE
        if reason is not None:
            self._metrics.failed(reason)
        self._feedback.emit(
            Feedback(
                dev_eui=normalise_dev_eui(dev_eui),
                status=FeedbackStatus.SENT if succeeded else FeedbackStatus.FAILED,
                correlation_id=correlation_id,
                reason=reason,
                detail=None if succeeded else _cause(report, kind),
                lns="thingpark",
                lns_reference=thingpark_id if isinstance(thingpark_id, str) else None,
                report=dict(report),
            )
        )


def _cause(report: Mapping[str, Any], kind: str) -> str:
    causes = [str(report[field]) for field in _CAUSE_FIELDS if report.get(field) not in (None, "")]
    return ", ".join(causes) if causes else f"ThingPark sent {kind}"
