"""Thing-registration Lambda entry point: Powertools decorators and one call into the logic."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from bridge_domain.registration import CLIENT_RETRIES, RegistrationSettings
from lambdas.thing_registration.environment import Environment
from lambdas.thing_registration.logic import register, settings_from

ENVIRONMENT = Environment.from_environ()
SETTINGS: RegistrationSettings = settings_from(ENVIRONMENT)

logger = Logger()
metrics = Metrics()
tracer = Tracer()


@lru_cache(maxsize=1)
def iot_client() -> Any:
    """The IoT client, created on first use; botocore's retries are off because the registrar retries itself."""
    return boto3.client("iot", config=Config(retries=dict(CLIENT_RETRIES)))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return register(event, iot_client(), SETTINGS, metrics)
