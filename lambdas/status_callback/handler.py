"""Status-callback Lambda entry point: Powertools decorators and one call into the logic."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.status_callback.environment import Environment
from lambdas.status_callback.logic import Dependencies, handle_event
from lambdas.status_callback.store import DeviceStatusStore
from lambdas.status_callback.webhook import WebhookSender, WebhookSettings

ENVIRONMENT = Environment.from_environ()
# A rotated webhook key is picked up within this time without a cold start.
SECRET_MAX_AGE_SECS = 300

logger = Logger()
metrics = Metrics()
tracer = Tracer()


@lru_cache(maxsize=1)
def dynamodb_client() -> Any:
    return boto3.client("dynamodb")


@lru_cache(maxsize=1)
def secrets_provider() -> SecretsProvider:
    return SecretsProvider(boto3_client=boto3.client("secretsmanager"))


def webhook_key() -> bytes:
    """The HMAC key: the whole SecretString of the webhook secret, cached for SECRET_MAX_AGE_SECS."""
    assert ENVIRONMENT.webhook_secret_arn is not None  # the environment model requires it with a URL
    value = secrets_provider().get(ENVIRONMENT.webhook_secret_arn, max_age=SECRET_MAX_AGE_SECS)
    return value.encode() if isinstance(value, str) else bytes(value or b"")


@lru_cache(maxsize=1)
def dependencies() -> Dependencies:
    """Clients and collaborators, created on the first invocation and reused while the environment lives."""
    webhook = None
    if ENVIRONMENT.webhook_url is not None:
        webhook = WebhookSender(WebhookSettings(url=ENVIRONMENT.webhook_url), key=webhook_key)
    return Dependencies(
        store=DeviceStatusStore(dynamodb_client(), ENVIRONMENT.device_status_table),
        persistence=DynamoDBPersistenceLayer(table_name=ENVIRONMENT.idempotency_table, boto3_client=dynamodb_client()),
        metrics=metrics,
        webhook=webhook,
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_event(event, context, dependencies())
