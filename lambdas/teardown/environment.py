"""Environment of the teardown functions (onEvent and isComplete), validated once at cold start."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from bridge_domain.environment import EnvironmentModel


class EnvVar(StrEnum):
    """Environment variables the functions read (the CDK app sets them by these names)."""

    THING_TYPE_NAME = "THING_TYPE_NAME"
    POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
    POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"


class Environment(EnvironmentModel):
    """The validated environment; an invalid one fails the cold start with every problem listed."""

    thing_type_name: str = Field(alias="THING_TYPE_NAME", pattern=r"^[a-zA-Z0-9:_-]{1,128}$")
    service_name: str = Field(alias="POWERTOOLS_SERVICE_NAME", min_length=1)
    metrics_namespace: str = Field(alias="POWERTOOLS_METRICS_NAMESPACE", min_length=1)
