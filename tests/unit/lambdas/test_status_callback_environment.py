"""The status-callback environment: tables required, webhook optional but always signed and over TLS."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lambdas.status_callback.environment import Environment, EnvVar

POWERTOOLS = {"POWERTOOLS_SERVICE_NAME": "s", "POWERTOOLS_METRICS_NAMESPACE": "n"}
TABLES = {"DEVICE_STATUS_TABLE": "device-status", "IDEMPOTENCY_TABLE": "idempotency"}
SECRET = {"WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:eu-central-1:123456789012:secret:webhook-hmac-AbCdEf"}


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        ({"WEBHOOK_URL": "https://platform.example/status"}, "needs WEBHOOK_SECRET_ARN"),
        ({"WEBHOOK_URL": "http://platform.example/status"} | SECRET, "must use https"),
        ({"WEBHOOK_URL": "https:///status"} | SECRET, "no host"),
        ({"WEBHOOK_SECRET_ARN": "webhook-hmac"}, "WEBHOOK_SECRET_ARN"),
    ],
)
def test_an_unusable_webhook_configuration_fails_the_cold_start(variables: dict[str, str], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Environment.from_environ(POWERTOOLS | TABLES | variables)


def test_webhook_settings_are_optional_and_empty_means_unset() -> None:
    environment = Environment.from_environ(POWERTOOLS | TABLES | {"WEBHOOK_URL": "", "WEBHOOK_SECRET_ARN": ""})

    assert (environment.webhook_url, environment.webhook_secret_arn) == (None, None)


def test_plain_http_is_accepted_only_to_this_machine() -> None:
    environment = Environment.from_environ(
        POWERTOOLS | TABLES | SECRET | {"WEBHOOK_URL": "http://127.0.0.1:8080/device-status"}
    )

    assert environment.webhook_url == "http://127.0.0.1:8080/device-status"


def test_the_model_reads_exactly_the_declared_variables() -> None:
    aliases = {field.alias for field in Environment.model_fields.values()}

    assert aliases == {member.value for member in EnvVar}
