"""The container's environment: the names of its variables and the validated, frozen settings read from them.

Only pydantic and the standard library are imported here: the CDK construct imports :class:`EnvVar` to set the
variables by the names the bridge reads, without pulling in the server or the MQTT client.

Precedence (explicit argument > environment > default) and "an empty variable is unset" come from
:class:`~bridge_domain.environment.EnvironmentModel`. Unknown variables, ``BRIDGE_*`` ones included, are ignored on
purpose: a connection document reads variables of its own choosing by name (``{"env": NAME}``; the construct
injects the certificate and LNS secrets as ``BRIDGE_IOT_*`` and ``BRIDGE_SECRET_*``), so an unknown name cannot be
told from a reference.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError
from pydantic_core import ErrorDetails

from bridge_container.exceptions import SettingsError
from bridge_domain.environment import EnvironmentModel
from bridge_domain.exceptions import FieldIssue
from bridge_domain.quotas import CREATE_THING_PER_SEC


class EnvVar(StrEnum):
    """Every environment variable of the bridge's task; the CDK construct sets them by these names."""

    # the bridge service (ServiceSettings)
    CONFIG_FILE = "BRIDGE_CONFIG_FILE"
    HTTP_HOST = "BRIDGE_HTTP_HOST"
    HTTP_PORT = "BRIDGE_HTTP_PORT"
    TASK_ID = "BRIDGE_TASK_ID"
    KEEP_DOWNLINK_SESSIONS = "BRIDGE_KEEP_DOWNLINK_SESSIONS"
    REGISTRATION_FUNCTION = "BRIDGE_REGISTRATION_FUNCTION"
    REGISTRATION_RATE_PER_SEC = "BRIDGE_REGISTRATION_RATE_PER_SEC"  # in-process registration; 15 / tasks
    DRAIN_DEADLINE_SECS = "BRIDGE_DRAIN_DEADLINE_SECS"
    EMF_INTERVAL_SECS = "BRIDGE_EMF_INTERVAL_SECS"
    LOG_LEVEL = "BRIDGE_LOG_LEVEL"
    LIFT_RATE_LIMITS = "BRIDGE_LIFT_RATE_LIMITS"  # benchmarks against a local broker only
    ECS_METADATA_URI = "ECS_CONTAINER_METADATA_URI_V4"  # set by ECS; the task id is read from it
    # the Connections API (ConnectionsSettings)
    CONNECTIONS_TABLE = "BRIDGE_CONNECTIONS_TABLE"
    CONNECTIONS_SECRET_PREFIX = "BRIDGE_CONNECTIONS_SECRET_PREFIX"  # noqa: S105 - a variable name, not a secret
    STATE_DIR = "BRIDGE_STATE_DIR"
    CONNECTIONS_SYNC_SECS = "BRIDGE_CONNECTIONS_SYNC_SECS"
    ADMIN_TOKEN = "BRIDGE_ADMIN_TOKEN"  # noqa: S105 - a variable name, not a token
    ADMIN_TOKEN_SECRET = "BRIDGE_ADMIN_TOKEN_SECRET"  # noqa: S105 - a variable name, not a secret
    # read by others in the task, not by the settings
    CONNECTION_DOCUMENT = "BRIDGE_CONNECTION_DOCUMENT"  # the init container writes it to CONFIG_FILE
    AWS_REGION = "AWS_REGION"  # boto3
    AWS_DEFAULT_REGION = "AWS_DEFAULT_REGION"  # boto3


DEFAULT_HTTP_HOST: Final = "127.0.0.1"
DEFAULT_HTTP_PORT: Final = 8080
DEFAULT_DRAIN_DEADLINE_SECS: Final = 20.0
DEFAULT_EMF_INTERVAL_SECS: Final = 60.0
DEFAULT_LOG_LEVEL: Final = "INFO"
DEFAULT_STATE_DIR: Final = ".state"
DEFAULT_CONNECTION_SECRETS_PREFIX: Final = "aws-iot-bridge/connections/"
DEFAULT_SYNC_INTERVAL_SECS: Final = 30.0  # how soon a change made through another task is applied here

Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value),
]


class _Section(EnvironmentModel):
    """Settings of one part of the container; by field name in code and tests, by variable name from the env."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, hide_input_in_errors=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **explicit: Any) -> Self:
        """Explicit arguments > ``environ`` (default ``os.environ``) > defaults; :class:`SettingsError` if invalid."""
        try:
            return cls.from_environ(os.environ if environ is None else environ, **explicit)
        except ValidationError as exc:
            raise _settings_error(exc) from None


class ServiceSettings(_Section):
    """Process-level settings; a connection's own settings live in its configuration."""

    task_id: str = Field(default_factory=socket.gethostname, alias=EnvVar.TASK_ID, min_length=1)
    # Keep the downlink subscribers' sessions when the bridge stops: only for a task that comes back with the same
    # BRIDGE_TASK_ID (its client IDs). Else a stopped task ends them, so the broker does not queue the shared
    # subscription's downlinks for a session nobody resumes.
    keep_downlink_sessions: bool = Field(False, alias=EnvVar.KEEP_DOWNLINK_SESSIONS)
    host: str = Field(DEFAULT_HTTP_HOST, alias=EnvVar.HTTP_HOST, min_length=1)
    port: Port = Field(DEFAULT_HTTP_PORT, alias=EnvVar.HTTP_PORT)
    config_file: str | None = Field(None, alias=EnvVar.CONFIG_FILE)
    registration_function: str | None = Field(None, alias=EnvVar.REGISTRATION_FUNCTION)
    # CreateThing's 15/s is per account: tasks registering in-process share it (the Lambda paces it alone).
    registration_rate_per_sec: float = Field(
        CREATE_THING_PER_SEC, gt=0, le=CREATE_THING_PER_SEC, alias=EnvVar.REGISTRATION_RATE_PER_SEC
    )
    drain_deadline_secs: Seconds = Field(DEFAULT_DRAIN_DEADLINE_SECS, alias=EnvVar.DRAIN_DEADLINE_SECS)
    emf_interval_secs: Seconds = Field(DEFAULT_EMF_INTERVAL_SECS, alias=EnvVar.EMF_INTERVAL_SECS)  # 0: no EMF
    log_level: LogLevel = Field(DEFAULT_LOG_LEVEL, alias=EnvVar.LOG_LEVEL)
    lift_rate_limits: bool = Field(False, alias=EnvVar.LIFT_RATE_LIMITS)
    ecs_metadata_uri: str | None = Field(None, alias=EnvVar.ECS_METADATA_URI)


class ConnectionsSettings(_Section):
    """Where connections are stored, how often each task follows the store, and the admin token of the API.

    With a table, connections live in DynamoDB and their secret values in Secrets Manager under the prefix;
    without one, in the embedded SQLite store in ``state_dir``. The token's secret wins over the token itself.
    """

    table_name: str | None = Field(None, alias=EnvVar.CONNECTIONS_TABLE)
    secret_name_prefix: str = Field(DEFAULT_CONNECTION_SECRETS_PREFIX, alias=EnvVar.CONNECTIONS_SECRET_PREFIX)
    state_dir: Path = Field(Path(DEFAULT_STATE_DIR), alias=EnvVar.STATE_DIR)
    sync_interval_secs: PositiveSeconds = Field(DEFAULT_SYNC_INTERVAL_SECS, alias=EnvVar.CONNECTIONS_SYNC_SECS)
    admin_token: SecretStr | None = Field(None, alias=EnvVar.ADMIN_TOKEN)
    admin_token_secret: str | None = Field(None, alias=EnvVar.ADMIN_TOKEN_SECRET)


class ContainerSettings(BaseModel):
    """Everything the container reads from its environment, validated together so every problem is reported."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service: ServiceSettings
    connections: ConnectionsSettings

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **explicit: Any) -> ContainerSettings:
        """Explicit arguments (by field name, of either section) > ``environ`` > defaults."""
        env = os.environ if environ is None else environ
        unknown = set(explicit) - set(ServiceSettings.model_fields) - set(ConnectionsSettings.model_fields)
        if unknown:
            raise TypeError(f"{cls.__name__} has no setting {sorted(unknown)}")
        sections: dict[str, type[_Section]] = {"service": ServiceSettings, "connections": ConnectionsSettings}
        values = {
            key: section.variables_of(env, **{k: v for k, v in explicit.items() if k in section.model_fields})
            for key, section in sections.items()
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise _settings_error(exc) from None


_VARIABLE_NAMES: Final = frozenset(member.value for member in EnvVar)


def _is_secret(annotation: object) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


_SECRET_VARIABLES: Final = frozenset(
    str(field.alias)
    for section in (ServiceSettings, ConnectionsSettings)
    for field in section.model_fields.values()
    if _is_secret(field.annotation)
)


def _issue(error: ErrorDetails) -> FieldIssue:
    variable = next((str(part) for part in error["loc"] if str(part) in _VARIABLE_NAMES), None)
    message = error["msg"]
    if variable is not None and variable not in _SECRET_VARIABLES:
        message = f"{message}, got {error['input']!r}"
    return FieldIssue(variable or ".".join(map(str, error["loc"])) or "environment", message)


def _settings_error(exc: ValidationError) -> SettingsError:
    """Every problem of ``exc``, each named by its variable and showing the value unless it is a secret."""
    return SettingsError([_issue(error) for error in exc.errors(include_url=False)])
