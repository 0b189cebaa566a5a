"""Fixtures for the Lambda tests: moto tables (on the account of tests/unit/conftest.py), Powertools, a context."""

from __future__ import annotations

import importlib
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3
import pytest

DEVICE_STATUS_TABLE = "aws-iot-bridge-device-status"
IDEMPOTENCY_TABLE = "aws-iot-bridge-idempotency"
FUNCTION_NAME = "aws-iot-bridge-test"
SERVICE_NAME = "aws-iot-bridge-test"


@dataclass
class FakeLambdaContext:
    """The attributes of a Lambda context that Powertools and the handlers read."""

    function_name: str = FUNCTION_NAME
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:eu-central-1:123456789012:function:{FUNCTION_NAME}"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    remaining_millis: int = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def powertools_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the CDK app sets for every function, with tracing off (no X-Ray daemon here)."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SERVICE_NAME)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "AwsIotBridge")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME)


class RecordingHandler(logging.Handler):
    """Keeps the records logged under the service's logger (Powertools child loggers propagate to it)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [record.getMessage() for record in self.records]


@pytest.fixture
def service_logs() -> Iterator[RecordingHandler]:
    """The function's log records (Powertools writes JSON to the stdout it found first, so read the records)."""
    recorder = RecordingHandler()
    service_logger = logging.getLogger(SERVICE_NAME)
    service_logger.addHandler(recorder)
    yield recorder
    service_logger.removeHandler(recorder)


@pytest.fixture
def load_handler(monkeypatch: pytest.MonkeyPatch, powertools_env: None) -> Callable[..., ModuleType]:
    """Import a handler module afresh under the given environment: a cold start, environment validation included."""

    def load(module_name: str, **environment: str) -> ModuleType:
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        return importlib.reload(importlib.import_module(module_name))

    return load


@pytest.fixture
def dynamodb(aws: None) -> Any:
    return boto3.client("dynamodb")


@pytest.fixture
def status_tables(dynamodb: Any) -> tuple[str, str]:
    """The device-status and idempotency tables with the keys the CDK app gives them."""
    for name, key in ((DEVICE_STATUS_TABLE, "thingName"), (IDEMPOTENCY_TABLE, "id")):
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    return DEVICE_STATUS_TABLE, IDEMPOTENCY_TABLE
