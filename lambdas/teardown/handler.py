"""Teardown Lambda entry points for the CDK Provider framework: ``on_event`` and ``is_complete``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from lambdas.teardown import logic
from lambdas.teardown.environment import Environment

ENVIRONMENT = Environment.from_environ()
SETTINGS = logic.TeardownSettings(thing_type=ENVIRONMENT.thing_type_name)
MS_PER_SEC = 1000

logger = Logger()
metrics = Metrics()
tracer = Tracer()


@lru_cache(maxsize=1)
def iot_client() -> Any:
    # The rate gates keep the calls under the quotas; botocore's standard retries absorb throttling from
    # other callers sharing them. The pool matches the worker threads.
    config = Config(retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=SETTINGS.workers + 2)
    return boto3.client("iot", config=config)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def on_event(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return logic.on_event(event, SETTINGS, metrics)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def is_complete(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    remaining_secs = context.get_remaining_time_in_millis() / MS_PER_SEC
    return logic.is_complete(event, iot_client(), SETTINGS, metrics, remaining_secs)
