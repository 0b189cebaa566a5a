"""Environment of the thing-registration function, validated once at cold start."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from bridge_domain.environment import EnvironmentModel
from bridge_domain.quotas import CREATE_THING_PER_SEC

# AWS IoT's account quota for CreateThing (and AttachThingPrincipal) calls.
CREATE_THING_QUOTA_PER_SEC = CREATE_THING_PER_SEC


class EnvVar(StrEnum):
    """Environment variables the function reads (the CDK app sets them by these names)."""

    THING_TYPE_NAME = "THING_TYPE_NAME"
    PRINCIPAL_ARN = "PRINCIPAL_ARN"
    CREATE_THING_RATE_PER_SEC = "CREATE_THING_RATE_PER_SEC"
    POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
    POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"


class Environment(EnvironmentModel):
    """The validated environment; an invalid one fails the cold start with every problem listed."""

    thing_type_name: str = Field(alias="THING_TYPE_NAME", pattern=r"^[a-zA-Z0-9:_-]{1,128}$")
    principal_arn: str | None = Field(
        default=None, alias="PRINCIPAL_ARN", pattern=r"^arn:aws[a-z-]*:iot:[a-z0-9-]+:\d{12}:cert/[0-9a-f]{64}$"
    )
    create_thing_rate_per_sec: float = Field(
        default=CREATE_THING_QUOTA_PER_SEC, alias="CREATE_THING_RATE_PER_SEC", gt=0, le=CREATE_THING_QUOTA_PER_SEC
    )
    service_name: str = Field(alias="POWERTOOLS_SERVICE_NAME", min_length=1)
    metrics_namespace: str = Field(alias="POWERTOOLS_METRICS_NAMESPACE", min_length=1)
