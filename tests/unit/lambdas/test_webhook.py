"""Signed webhook delivery against a real local HTTP server; signatures checked by an independent HMAC."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from lambdas.status_callback.exceptions import WebhookDeliveryError
from lambdas.status_callback.webhook import WebhookSender, WebhookSettings
from tests.unit.lambdas.conftest import FakeLambdaContext
from tests.unit.lambdas.support import FakeClock, ReceivedRequest, WebhookServer, load_event, sns_message, with_message

pytestmark = pytest.mark.integration

KEY = b"platform-shared-hmac-key-7c1f"
HANDLER = "lambdas.status_callback.handler"


def signed_correctly(request: ReceivedRequest, key: bytes = KEY) -> bool:
    """The receiver's check, written from the documented scheme rather than with the sender's code."""
    timestamp = request.headers["x-bridge-timestamp"]
    expected = "sha256=" + hmac.new(key, timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request.headers["x-bridge-signature"])


def sender(url: str, clock: FakeClock, max_attempts: int = 3) -> WebhookSender:
    settings = WebhookSettings(url=url, timeout_secs=2.0, max_attempts=max_attempts)
    return WebhookSender(settings, key=lambda: KEY, clock=clock, sleep=clock.sleep)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now=1_720_000_000.0)


def test_a_delivery_is_signed_over_timestamp_and_body(clock: FakeClock) -> None:
    with WebhookServer() as server:
        status = sender(server.url, clock).send(b'{"thingName":"edge-gateway-01"}')

    assert status == 200
    [request] = server.requests
    assert request.path == "/device-status"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-bridge-timestamp"] == "1720000000"
    assert request.body == b'{"thingName":"edge-gateway-01"}'
    assert signed_correctly(request)
    assert not signed_correctly(request, key=b"another key")


def test_server_errors_are_retried_and_each_attempt_is_signed_afresh(clock: FakeClock) -> None:
    with WebhookServer(statuses=[503, 500, 200]) as server:
        status = sender(server.url, clock).send(b"{}")

    assert status == 200
    assert len(server.requests) == 3
    assert all(signed_correctly(request) for request in server.requests)
    assert clock.sleeps == [0.5, 1.0]
    timestamps = [int(request.headers["x-bridge-timestamp"]) for request in server.requests]
    assert timestamps == sorted(timestamps)
    assert timestamps[0] < timestamps[-1]


def test_too_many_requests_is_retried(clock: FakeClock) -> None:
    with WebhookServer(statuses=[429]) as server:
        assert sender(server.url, clock).send(b"{}") == 200

    assert len(server.requests) == 2


def test_a_client_error_is_final_and_not_retried(clock: FakeClock) -> None:
    with WebhookServer(statuses=[401]) as server, pytest.raises(WebhookDeliveryError, match="HTTP 401"):
        sender(server.url, clock).send(b"{}")

    assert len(server.requests) == 1


def test_server_errors_on_every_attempt_fail_the_delivery(clock: FakeClock) -> None:
    with WebhookServer(statuses=[503] * 5) as server, pytest.raises(WebhookDeliveryError, match="3 attempts"):
        sender(server.url, clock).send(b"{}")

    assert len(server.requests) == 3


def test_an_unreachable_webhook_fails_after_every_attempt(clock: FakeClock) -> None:
    with WebhookServer() as server:
        url = server.url  # the port is closed once the server has stopped

    with pytest.raises(WebhookDeliveryError, match="unreachable"):
        sender(url, clock, max_attempts=2).send(b"{}")
    assert clock.sleeps == [0.5]


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


@pytest.fixture
def callback_with_webhook(
    load_handler: Callable[..., ModuleType], status_tables: tuple[str, str], webhook_server: WebhookServer
) -> ModuleType:
    secret_arn = boto3.client("secretsmanager").create_secret(Name="webhook-hmac", SecretString=KEY.decode())["ARN"]
    device_status, idempotency = status_tables
    return load_handler(
        HANDLER,
        DEVICE_STATUS_TABLE=device_status,
        IDEMPOTENCY_TABLE=idempotency,
        WEBHOOK_URL=webhook_server.url,
        WEBHOOK_SECRET_ARN=secret_arn,
    )


def test_each_stored_change_is_forwarded_signed(
    callback_with_webhook: ModuleType, webhook_server: WebhookServer, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("sns_status_presence_connected")

    callback_with_webhook.handler(event, lambda_context)
    callback_with_webhook.handler(load_event("sns_devicestate_shadow_documents"), lambda_context)

    connection, state = webhook_server.requests
    assert all(signed_correctly(request) for request in webhook_server.requests)
    assert abs(int(connection.headers["x-bridge-timestamp"]) - time.time()) < 60
    assert json.loads(connection.body) == {
        "eventId": event["Records"][0]["Sns"]["MessageId"],
        "type": "connection",
        "thingName": "edge-gateway-01",
        "connected": True,
        "changedAtMs": 1720000000123,
        "source": "presence",
        "disconnectReason": None,
    }
    body: dict[str, Any] = json.loads(state.body)
    assert (body["type"], body["shadowVersion"], body["reported"]["sensors"]["temperature"]) == ("state", 13, 22.75)


def test_duplicates_and_older_changes_are_not_forwarded(
    callback_with_webhook: ModuleType, webhook_server: WebhookServer, lambda_context: FakeLambdaContext
) -> None:
    disconnected = load_event("sns_status_presence_disconnected")
    callback_with_webhook.handler(disconnected, lambda_context)

    callback_with_webhook.handler(disconnected, lambda_context)
    callback_with_webhook.handler(load_event("sns_status_presence_connected"), lambda_context)

    assert len(webhook_server.requests) == 1
    assert json.loads(webhook_server.requests[0].body)["connected"] is False


def test_a_refused_delivery_fails_the_event_and_a_redrive_sends_it_again(
    callback_with_webhook: ModuleType, webhook_server: WebhookServer, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("sns_status_presence_connected")
    webhook_server.statuses = [403]

    with pytest.raises(WebhookDeliveryError, match="HTTP 403"):
        callback_with_webhook.handler(event, lambda_context)
    callback_with_webhook.handler(event, lambda_context)

    assert len(webhook_server.requests) == 2
    assert webhook_server.requests[0].body == webhook_server.requests[1].body


def test_a_late_copy_with_a_new_message_id_is_not_forwarded(
    callback_with_webhook: ModuleType, webhook_server: WebhookServer, lambda_context: FakeLambdaContext
) -> None:
    newer = load_event("sns_devicestate_shadow_documents")
    older = sns_message(newer)
    older["current"] = older["previous"]
    callback_with_webhook.handler(newer, lambda_context)

    callback_with_webhook.handler(with_message(newer, older, "late-copy"), lambda_context)

    assert len(webhook_server.requests) == 1
