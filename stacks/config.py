"""The deployment's input: a configuration file validated by the connection model, plus what only a deployment needs.

A deployment writes nothing secret into CloudFormation: every secret of the connection must be a Secrets Manager
reference, which the task definition injects at run time. Every problem is reported with its field path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, SecretStr

from bridge_domain.connection import Connection, ConnectionConfiguration
from bridge_domain.deployment import DeploymentSettings
from bridge_domain.exceptions import ConfigError, FieldIssue
from bridge_domain.loading import format_location, load_connection_file
from bridge_domain.naming import ResourceNames
from bridge_domain.secrets import SecretsManagerRef

FieldPath = tuple[str | int, ...]
SecretValue = SecretStr | SecretsManagerRef
# The client certificate is public (AWS IoT shows it to anyone with DescribeCertificate): it may be inline.
PUBLIC_SECRET_FIELDS = frozenset({"certificate"})
_CONFIGURATION = "configuration"


@dataclass(frozen=True, slots=True)
class BridgeDeployment:
    """A validated deployment: the connection and its deployment settings."""

    connection: Connection
    settings: DeploymentSettings

    @property
    def configuration(self) -> ConnectionConfiguration:
        return self.connection.configuration

    @property
    def names(self) -> ResourceNames:
        return self.configuration.resource_names

    @property
    def region(self) -> str:
        return self.configuration.region


def load_deployment(path: str | Path) -> BridgeDeployment:
    """Load and validate a deployment's configuration file; :class:`ConfigError` lists every problem found."""
    connection = load_connection_file(path)
    issues = deployment_issues(connection)
    if issues or connection.deployment is None:
        raise ConfigError(issues, str(path))
    return BridgeDeployment(connection=connection, settings=connection.deployment)


def secret_fields(model: BaseModel, path: FieldPath = ()) -> Iterator[tuple[FieldPath, SecretValue]]:
    """Every secret in ``model`` with its JSON path (aliases, list indexes)."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        yield from _secrets_in(value, (*path, field.alias or name))


def _secrets_in(value: object, path: FieldPath) -> Iterator[tuple[FieldPath, SecretValue]]:
    if isinstance(value, SecretStr | SecretsManagerRef):
        yield path, value
    elif isinstance(value, BaseModel):
        yield from secret_fields(value, path)
    elif isinstance(value, tuple | list):
        for index, item in enumerate(value):
            yield from _secrets_in(item, (*path, index))


def deployment_issues(connection: Connection) -> list[FieldIssue]:
    """What stops this connection from being deployed, beyond what the connection model checks."""
    configuration = connection.configuration
    settings = connection.deployment
    issues: list[FieldIssue] = []

    def add(path: FieldPath, message: str) -> None:
        issues.append(FieldIssue(format_location(path), message))

    if settings is None:
        add(("deployment",), "required in a deployment's file: at least httpsCertificateArn or allowPlainHttp")
    for path, value in secret_fields(configuration, (_CONFIGURATION,)):
        if isinstance(value, SecretStr) and path[-1] not in PUBLIC_SECRET_FIELDS:
            add(
                path,
                'a deployment takes secrets as {"secretsManager": {"secretId": ...}} references; '
                "a value here would be written into the CloudFormation template",
            )
    if configuration.broker is not None:
        add(
            (_CONFIGURATION, "broker"),
            "a deployment connects to AWS IoT Core (endpoint discovered at deploy time, or from accountPrefix)",
        )
    if settings is not None:
        certificate_region = settings.https_certificate_region
        if certificate_region not in (None, configuration.region):
            add(
                ("deployment", "httpsCertificateArn"),
                f"the certificate is in {certificate_region}; the load balancer is in {configuration.region}",
            )
        if settings.lorawan_shadow:
            problem = lorawan_shadow_problem(configuration)
            if problem is not None:
                add(("deployment", "lorawanShadow"), problem)
        for field, problem in account_quota_problems(configuration, settings):
            add(("deployment", field), problem)
    return issues


def account_quota_problems(
    configuration: ConnectionConfiguration, settings: DeploymentSettings
) -> list[tuple[str, str]]:
    """Where the most the bridge's tasks can do together exceeds the account figures the deployment plans against.

    Each client's publishes (uplinks and downlink feedback alike) pass its per-client limiter, so one task publishes
    at most ``poolSize x perClientRatePerSec`` a second; at the scaling ceiling ``maxTasks`` tasks do. After an
    outage every client of every task reconnects at once.
    """
    problems: list[tuple[str, str]] = []
    tasks, clients = settings.max_tasks, configuration.pool_size
    publishes = tasks * clients * configuration.per_client_rate_per_sec
    if publishes > settings.account_publishes_per_sec:
        problems.append(
            (
                "maxTasks",
                f"maxTasks x poolSize x perClientRatePerSec = {tasks} x {clients} x "
                f"{configuration.per_client_rate_per_sec} = {publishes} publishes/s exceeds accountPublishesPerSec "
                f"({settings.account_publishes_per_sec}); lower maxTasks or the pool's rates, or raise the account's "
                "quota (Service Quotas) and accountPublishesPerSec with it",
            )
        )
    connects = tasks * clients
    if connects > settings.account_connects_per_sec:
        problems.append(
            (
                "maxTasks",
                f"maxTasks x poolSize = {tasks} x {clients} = {connects} connects/s exceeds accountConnectsPerSec "
                f"({settings.account_connects_per_sec}); lower maxTasks or poolSize, or raise the account's quota "
                "and accountConnectsPerSec with it",
            )
        )
    return problems


def lorawan_shadow_problem(configuration: ConnectionConfiguration) -> str | None:
    """Why a rule cannot keep the LoRaWAN shadow from this connection's uplinks, or None when it can."""
    if configuration.uplink_document == "decoded":
        return "needs uplinkDocument thingpark or flat: decoded documents carry no radio metadata"
    if configuration.uplink_topic_pattern.startswith("$") or configuration.uplink_delivery == "basicIngest":
        return "a rule cannot subscribe to Basic Ingest ($aws/rules/...) uplink topics"
    if "{DevEUI}" not in configuration.uplink_topic_pattern.split("/"):
        return "{DevEUI} must fill a whole level of uplinkTopicPattern to name the thing"
    return None
