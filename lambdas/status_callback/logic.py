"""One SNS notification from the IoT rules → a conditional write of the thing's status and, when set, a webhook call.

Failure design (SNS invokes the function asynchronously): an invalid event or message is logged with its SNS
message id, counted (``InvalidMessages``) and raised as :class:`InvalidMessageError`. The function is meant to run
with ``retryAttempts: 0`` and an on-failure destination (SQS): a failed event lands there once, with its
payload and error, instead of being retried. Transient trouble is retried inside the invocation instead
(botocore for DynamoDB, the webhook sender for 5xx), so nothing is lost by not retrying the event.

Idempotency: Powertools Idempotency on DynamoDB keyed by the SNS message id. A duplicate delivery returns the
stored result without writing or calling the webhook again (counted as ``DuplicateMessages``); a failed attempt
leaves no record, so redriving it from the queue processes it afresh.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer, IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.exceptions import InvalidModelTypeError
from aws_lambda_powertools.utilities.parser.models import SnsModel, SnsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from bridge_domain.naming import ResourceNames
from lambdas.status_callback.exceptions import InvalidMessageError
from lambdas.status_callback.models import ConnectionChange, ShadowDocumentsMessage, StateChange, StatusMessage
from lambdas.status_callback.store import DeviceStatusStore
from lambdas.status_callback.webhook import WebhookSender

logger = Logger(child=True)

# Long enough to absorb SNS redeliveries and a same-day redrive of a processed event; DynamoDB TTL cleans up.
IDEMPOTENCY_EXPIRY_SECS = 24 * 60 * 60
_MAX_PROBLEMS_SHOWN = 5


class TopicKind(StrEnum):
    """Which SNS topic a notification came from; the topic name starts with the enebular name (plus suffix)."""

    STATUS = ResourceNames().status_push_topic
    DEVICESTATE = ResourceNames().devicestate_push_topic


@dataclass(frozen=True, slots=True)
class Dependencies:
    """What the logic talks to, built once per execution environment by the handler."""

    store: DeviceStatusStore
    persistence: BasePersistenceLayer
    metrics: Metrics
    webhook: WebhookSender | None = None


Change = ConnectionChange | StateChange


def topic_kind(topic_arn: str) -> TopicKind:
    name = topic_arn.rsplit(":", 1)[-1]
    for kind in TopicKind:
        if name.startswith(kind.value):
            return kind
    raise ValueError(f"notification from unexpected topic {name!r}")


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        issues = [
            f"{'.'.join(str(part) for part in error['loc']) or '(message)'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
        more = len(issues) - _MAX_PROBLEMS_SHOWN
        return "; ".join(issues[:_MAX_PROBLEMS_SHOWN]) + (f"; and {more} more" if more > 0 else "")
    return str(exc)


def parse_change(topic_arn: str, message: str) -> Change:
    """The change carried by a notification; raises ValueError (pydantic's included) when it is not one."""
    kind = topic_kind(topic_arn)
    document = json.loads(message)
    if kind is TopicKind.STATUS:
        return parse(event=document, model=StatusMessage).to_connection_change()
    return parse(event=document, model=ShadowDocumentsMessage).to_state_change()


def _reject(metrics: Metrics, problem: str, message_id: str | None, topic_arn: str | None) -> InvalidMessageError:
    metrics.add_metric(name="InvalidMessages", unit=MetricUnit.Count, value=1)
    logger.error("invalid message", extra={"messageId": message_id, "topicArn": topic_arn, "problem": problem})
    return InvalidMessageError(f"message {message_id or '(no id)'}: {problem}")


def webhook_body(message_id: str, change: Change) -> bytes:
    """The JSON the webhook receives for one applied change (compact, keys sorted)."""
    document: dict[str, Any]
    if isinstance(change, ConnectionChange):
        document = {
            "type": "connection",
            "connected": change.connected,
            "changedAtMs": change.at_ms,
            "source": change.source.value,
            "disconnectReason": change.disconnect_reason,
        }
    else:
        document = {
            "type": "state",
            "reported": change.reported,
            "shadowVersion": change.version,
            "updatedAtMs": change.at_ms,
        }
    document |= {"eventId": message_id, "thingName": change.thing_name}
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def apply_change(*, notification: dict[str, str], change: Change, deps: Dependencies) -> dict[str, Any]:
    """Write the change unless it is older than the stored one; forward it to the webhook when it was written."""
    message_id = notification["messageId"]
    if isinstance(change, ConnectionChange):
        applied = deps.store.record_connection(change)
    else:
        applied = deps.store.record_state(change)
    kind = "connection" if isinstance(change, ConnectionChange) else "state"
    result: dict[str, Any] = {"messageId": message_id, "thingName": change.thing_name, "kind": kind}
    if not applied:
        deps.metrics.add_metric(name="StaleChangesIgnored", unit=MetricUnit.Count, value=1)
        logger.info("older change ignored", extra=result)
        return result | {"applied": False, "webhookStatus": None}
    deps.metrics.add_metric(name="StatusChangesStored", unit=MetricUnit.Count, value=1)
    status = None
    if deps.webhook is not None:
        status = deps.webhook.send(webhook_body(message_id, change))
        deps.metrics.add_metric(name="WebhookDeliveries", unit=MetricUnit.Count, value=1)
    return result | {"applied": True, "webhookStatus": status}


def _duplicate_hook(metrics: Metrics) -> Any:
    def hook(response: Any, record: DataRecord) -> Any:
        metrics.add_metric(name="DuplicateMessages", unit=MetricUnit.Count, value=1)
        logger.info("duplicate message skipped", extra={"idempotencyKey": record.idempotency_key})
        return response

    return hook


def handle_event(event: Any, context: LambdaContext, deps: Dependencies) -> dict[str, Any]:
    """Process every record of an SNS event (SNS delivers one per invocation); return what each one did."""
    try:
        envelope = parse(event=event, model=SnsModel)
    except (ValidationError, InvalidModelTypeError) as exc:
        raise _reject(deps.metrics, f"not an SNS event: {_problem(exc)}", None, None) from exc
    config = IdempotencyConfig(
        event_key_jmespath="messageId",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=IDEMPOTENCY_EXPIRY_SECS,
        response_hook=_duplicate_hook(deps.metrics),
        lambda_context=context,
    )
    apply = idempotent_function(
        apply_change, data_keyword_argument="notification", persistence_store=deps.persistence, config=config
    )
    processed = [_handle_record(record, deps, apply) for record in envelope.Records]
    return {"processed": processed}


def _handle_record(record: SnsRecordModel, deps: Dependencies, apply: Any) -> dict[str, Any]:
    notification = record.Sns
    message = notification.Message if isinstance(notification.Message, str) else ""
    try:
        change = parse_change(notification.TopicArn, message)
    except (ValueError, InvalidModelTypeError) as exc:
        raise _reject(deps.metrics, _problem(exc), notification.MessageId, notification.TopicArn) from exc
    result: dict[str, Any] = apply(notification={"messageId": notification.MessageId}, change=change, deps=deps)
    return result
