"""Bridge-certificate custom resource entry point: the Powertools logger and one call into the logic."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.bridge_certificate.logic import Clients, handle

logger = Logger()


@lru_cache(maxsize=1)
def clients() -> Clients:
    """The IoT and Secrets Manager clients, created on first use."""
    return Clients(iot=boto3.client("iot"), secretsmanager=boto3.client("secretsmanager"))


# No event logging: the Create response is harmless, but the event is not worth the risk of a future secret in it.
@logger.inject_lambda_context(log_event=False)
def on_event(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, clients())
