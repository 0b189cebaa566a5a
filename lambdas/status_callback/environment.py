"""Environment of the status-callback function, validated once at cold start."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from bridge_domain.environment import EnvironmentModel

_LOOPBACK_NAMES = frozenset({"localhost"})


class EnvVar(StrEnum):
    """Environment variables the function reads (the CDK app sets them by these names)."""

    DEVICE_STATUS_TABLE = "DEVICE_STATUS_TABLE"
    IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE"
    WEBHOOK_URL = "WEBHOOK_URL"
    WEBHOOK_SECRET_ARN = "WEBHOOK_SECRET_ARN"  # noqa: S105 - a variable name, not a secret
    POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
    POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Environment(EnvironmentModel):
    """The validated environment; an invalid one fails the cold start with every problem listed."""

    device_status_table: str = Field(alias="DEVICE_STATUS_TABLE", pattern=r"^[a-zA-Z0-9_.-]{3,255}$")
    idempotency_table: str = Field(alias="IDEMPOTENCY_TABLE", pattern=r"^[a-zA-Z0-9_.-]{3,255}$")
    webhook_url: str | None = Field(default=None, alias="WEBHOOK_URL", max_length=2048)
    webhook_secret_arn: str | None = Field(
        default=None, alias="WEBHOOK_SECRET_ARN", pattern=r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$"
    )
    service_name: str = Field(alias="POWERTOOLS_SERVICE_NAME", min_length=1)
    metrics_namespace: str = Field(alias="POWERTOOLS_METRICS_NAMESPACE", min_length=1)

    @field_validator("webhook_url")
    @classmethod
    def _https_only(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if not parts.hostname:
            raise ValueError("webhook URL has no host")
        # Plain HTTP only to this machine (local runs and tests); device status leaves the account over TLS.
        if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(parts.hostname)):
            raise ValueError("webhook URL must use https")
        return value

    @model_validator(mode="after")
    def _webhook_is_signed(self) -> Environment:
        if self.webhook_url is not None and self.webhook_secret_arn is None:
            raise ValueError(f"{EnvVar.WEBHOOK_URL} needs {EnvVar.WEBHOOK_SECRET_ARN}: every webhook call is signed")
        return self
