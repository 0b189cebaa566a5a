"""The status-callback Lambda on moto: stored status, late arrivals, duplicates and bad messages."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from lambdas.status_callback.exceptions import InvalidMessageError
from tests.unit.lambdas.conftest import FakeLambdaContext, RecordingHandler
from tests.unit.lambdas.support import emitted_metrics, load_event, sns_message, with_message

HANDLER = "lambdas.status_callback.handler"
THING = "edge-gateway-01"
_deserializer = TypeDeserializer()


@pytest.fixture
def status_callback(load_handler: Callable[..., ModuleType], status_tables: tuple[str, str]) -> ModuleType:
    device_status, idempotency = status_tables
    return load_handler(HANDLER, DEVICE_STATUS_TABLE=device_status, IDEMPOTENCY_TABLE=idempotency)


def stored(dynamodb: Any, table: str, thing: str = THING) -> dict[str, Any] | None:
    item = dynamodb.get_item(TableName=table, Key={"thingName": {"S": thing}}, ConsistentRead=True).get("Item")
    return None if item is None else {key: _deserializer.deserialize(value) for key, value in item.items()}


def idempotency_records(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = dynamodb.scan(TableName=table)["Items"]
    return items


def test_a_presence_connected_event_stores_the_thing_as_connected(
    status_callback: ModuleType, dynamodb: Any, status_tables: tuple[str, str], lambda_context: FakeLambdaContext
) -> None:
    response = status_callback.handler(load_event("sns_status_presence_connected"), lambda_context)

    item = stored(dynamodb, status_tables[0])
    assert item is not None
    assert item["connected"] is True
    assert item["connectionChangedAt"] == 1720000000123
    assert item["connectionSource"] == "presence"
    assert item["connectionSequence"] == 4
    assert "disconnectReason" not in item
    assert response["processed"][0]["applied"] is True


def test_a_later_disconnect_replaces_it_with_its_reason(
    status_callback: ModuleType, dynamodb: Any, status_tables: tuple[str, str], lambda_context: FakeLambdaContext
) -> None:
    status_callback.handler(load_event("sns_status_presence_connected"), lambda_context)
    status_callback.handler(load_event("sns_status_presence_disconnected"), lambda_context)

    item = stored(dynamodb, status_tables[0])
    assert item is not None
    assert item["connected"] is False
    assert item["connectionChangedAt"] == 1720000360451
    assert item["disconnectReason"] == "MQTT_KEEP_ALIVE_TIMEOUT"


def test_an_older_connection_event_arriving_late_is_ignored_and_counted(
    status_callback: ModuleType,
    dynamodb: Any,
    status_tables: tuple[str, str],
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status_callback.handler(load_event("sns_status_presence_disconnected"), lambda_context)
    capsys.readouterr()

    response = status_callback.handler(load_event("sns_status_presence_connected"), lambda_context)

    item = stored(dynamodb, status_tables[0])
    assert item is not None
    assert item["connected"] is False
    assert response["processed"][0]["applied"] is False
    assert emitted_metrics(capsys.readouterr().out)["StaleChangesIgnored"] == 1


def test_the_shadow_connection_flag_sets_the_status_with_the_shadow_version(
    status_callback: ModuleType, dynamodb: Any, status_tables: tuple[str, str], lambda_context: FakeLambdaContext
) -> None:
    status_callback.handler(load_event("sns_status_shadow_connected"), lambda_context)

    item = stored(dynamodb, status_tables[0])
    assert item is not None
    assert item["connected"] is True
    assert item["connectionSource"] == "shadow"
    assert item["connectionSequence"] == 12
    assert item["connectionChangedAt"] == 1720000100 * 1000


def test_a_shadow_document_stores_the_reported_state_and_its_version(
    status_callback: ModuleType, dynamodb: Any, status_tables: tuple[str, str], lambda_context: FakeLambdaContext
) -> None:
    status_callback.handler(load_event("sns_devicestate_shadow_documents"), lambda_context)

    item = stored(dynamodb, status_tables[0])
    assert item is not None
    assert item["shadowVersion"] == 13
    assert item["shadowUpdatedAt"] == 1720000200 * 1000
    assert item["reported"]["sensors"]["temperature"] == Decimal("22.75")
    assert item["reported"]["enebular"]["agent"]["version"] == "2.15.1"


def test_an_older_shadow_version_arriving_late_changes_nothing(
    status_callback: ModuleType, dynamodb: Any, status_tables: tuple[str, str], lambda_context: FakeLambdaContext
) -> None:
    newer = load_event("sns_devicestate_shadow_documents")
    older_message = sns_message(newer)
    older_message["current"] = older_message["previous"]  # version 12, temperature 21.5
    status_callback.handler(newer, lambda_context)

    response = status_callback.handler(with_message(newer, older_message, "late-delivery-1"), lambda_context)

    item = stored(dynamodb, status_tables[0])
    assert item is not None
    assert item["shadowVersion"] == 13
    assert item["reported"]["sensors"]["temperature"] == Decimal("22.75")
    assert response["processed"][0]["applied"] is False


def test_state_and_connection_status_live_side_by_side_in_one_item(
    status_callback: ModuleType, dynamodb: Any, status_tables: tuple[str, str], lambda_context: FakeLambdaContext
) -> None:
    status_callback.handler(load_event("sns_devicestate_shadow_documents"), lambda_context)
    status_callback.handler(load_event("sns_status_presence_disconnected"), lambda_context)

    item = stored(dynamodb, status_tables[0])
    assert item is not None
    assert item["shadowVersion"] == 13
    assert item["connected"] is False


def test_a_duplicate_sns_delivery_is_processed_once(
    status_callback: ModuleType,
    dynamodb: Any,
    status_tables: tuple[str, str],
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = load_event("sns_status_presence_connected")
    first = status_callback.handler(event, lambda_context)
    # Remove the stored status: a second processing would write it again.
    dynamodb.delete_item(TableName=status_tables[0], Key={"thingName": {"S": THING}})
    capsys.readouterr()

    second = status_callback.handler(event, lambda_context)

    assert stored(dynamodb, status_tables[0]) is None
    assert second == first
    assert emitted_metrics(capsys.readouterr().out)["DuplicateMessages"] == 1
    assert len(idempotency_records(dynamodb, status_tables[1])) == 1


def test_the_same_change_under_a_new_message_id_is_processed(
    status_callback: ModuleType, dynamodb: Any, status_tables: tuple[str, str], lambda_context: FakeLambdaContext
) -> None:
    event = load_event("sns_status_presence_connected")
    status_callback.handler(event, lambda_context)
    dynamodb.delete_item(TableName=status_tables[0], Key={"thingName": {"S": THING}})

    status_callback.handler(with_message(event, sns_message(event), "redelivered-by-the-rule"), lambda_context)

    assert stored(dynamodb, status_tables[0]) is not None


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (None, "eventType"),  # the event file's own bad message
        ({"clientId": THING, "timestamp": 1720000000123}, "eventType"),
        ({"previous": None, "timestamp": 1720000100, "thingName": THING}, "current"),
        ({"current": {"state": {"reported": {}}, "version": 1}, "timestamp": 1, "thingName": THING}, "connected"),
    ],
)
def test_a_bad_message_is_counted_raised_and_leaves_nothing_behind(
    status_callback: ModuleType,
    dynamodb: Any,
    status_tables: tuple[str, str],
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
    service_logs: RecordingHandler,
    message: dict[str, Any] | None,
    problem: str,
) -> None:
    event = load_event("sns_status_invalid_message")
    if message is not None:
        event = with_message(event, message, "bad-message-1")

    with pytest.raises(InvalidMessageError, match=problem):
        status_callback.handler(event, lambda_context)

    assert emitted_metrics(capsys.readouterr().out)["InvalidMessages"] == 1
    assert "invalid message" in service_logs.messages()
    assert stored(dynamodb, status_tables[0]) is None
    # No idempotency record: redriving the event from the failure queue processes it afresh.
    assert idempotency_records(dynamodb, status_tables[1]) == []


def test_a_message_that_is_not_json_is_a_bad_message(
    status_callback: ModuleType, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("sns_status_presence_connected")
    event["Records"][0]["Sns"]["Message"] = "connected"

    with pytest.raises(InvalidMessageError):
        status_callback.handler(event, lambda_context)


def test_a_notification_from_another_topic_is_a_bad_message(
    status_callback: ModuleType, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("sns_status_presence_connected")
    event["Records"][0]["Sns"]["TopicArn"] = "arn:aws:sns:eu-central-1:123456789012:billing-alerts"

    with pytest.raises(InvalidMessageError, match="billing-alerts"):
        status_callback.handler(event, lambda_context)


def test_an_event_that_is_not_from_sns_is_a_bad_message(
    status_callback: ModuleType, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InvalidMessageError, match="not an SNS event"):
        status_callback.handler({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}, lambda_context)

    assert emitted_metrics(capsys.readouterr().out)["InvalidMessages"] == 1


def test_topics_with_a_region_suffix_are_recognised(
    status_callback: ModuleType, dynamodb: Any, status_tables: tuple[str, str], lambda_context: FakeLambdaContext
) -> None:
    event = load_event("sns_devicestate_shadow_documents")
    event["Records"][0]["Sns"]["TopicArn"] += "_eu_central_1"

    status_callback.handler(event, lambda_context)

    assert stored(dynamodb, status_tables[0]) is not None
