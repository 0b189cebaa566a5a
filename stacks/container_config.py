"""The connection file the deployed bridge starts with: the configuration file, rewritten for the task.

* every Secrets Manager reference becomes ``{"env": "BRIDGE_SECRET_..."}``, and the task definition injects that
  variable from the secret (so the document holds no secret, and the bridge needs no Secrets Manager access);
* a certificate created at deploy time is referenced the same way from its secret;
* the broker is the IoT data endpoint discovered at deploy time (unless ``accountPrefix`` names one);
* the ``deployment`` section is left out (the bridge does not read it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from bridge_domain.connection import Connection
from bridge_domain.secrets import SecretsManagerRef
from stacks.config import PUBLIC_SECRET_FIELDS, FieldPath, secret_fields

CONFIG_DIRECTORY = "/run/bridge"
CONFIG_FILE = f"{CONFIG_DIRECTORY}/connection.json"
IOT_CERTIFICATE_ENV = "BRIDGE_IOT_CERTIFICATE"
IOT_PRIVATE_KEY_ENV = "BRIDGE_IOT_PRIVATE_KEY"
SECRET_ENV_PREFIX = "BRIDGE_SECRET_"  # noqa: S105 - a variable-name prefix, not a secret
_CONFIGURATION = "configuration"
_CERTIFICATE_PATHS = frozenset({(_CONFIGURATION, "certificate"), (_CONFIGURATION, "privateKey")})
_CAMEL_BOUNDARY_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclass(frozen=True, slots=True)
class SecretEnv:
    """An environment variable the task definition fills from a Secrets Manager secret."""

    name: str
    reference: SecretsManagerRef


@dataclass(frozen=True, slots=True)
class CreatedCertificate:
    """The certificate created at deploy time: its ARN (a token) and the secret holding its PEM and key."""

    certificate_arn: str


@dataclass(frozen=True, slots=True)
class ContainerConnection:
    """The document to write to :data:`CONFIG_FILE` and the secrets it expects in the environment."""

    document: dict[str, Any]
    secret_envs: tuple[SecretEnv, ...]


def secret_env_name(path: FieldPath) -> str:
    """``('configuration', 'lns', 0, 'asKey')`` → ``BRIDGE_SECRET_LNS_0_AS_KEY``."""
    parts = [_CAMEL_BOUNDARY_RE.sub("_", str(part)).upper() for part in path if part != _CONFIGURATION]
    return SECRET_ENV_PREFIX + "_".join(parts)


def _set(document: dict[str, Any], path: FieldPath, value: object) -> None:
    node: Any = document
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def container_connection(
    connection: Connection, *, endpoint: str | None, created_certificate: CreatedCertificate | None
) -> ContainerConnection:
    """The connection as the task reads it (``endpoint`` and the certificate ARN may be CloudFormation tokens)."""
    document: dict[str, Any] = connection.model_dump(mode="json", exclude={"deployment"})
    secret_envs: list[SecretEnv] = []
    for path, value in secret_fields(connection.configuration, (_CONFIGURATION,)):
        if created_certificate is not None and path in _CERTIFICATE_PATHS:
            continue  # replaced by the certificate created at deploy time
        if isinstance(value, SecretsManagerRef):
            env = SecretEnv(secret_env_name(path), value)
            secret_envs.append(env)
            _set(document, path, {"env": env.name})
        elif isinstance(value, SecretStr) and path[-1] in PUBLIC_SECRET_FIELDS:
            _set(document, path, value.get_secret_value())
    configuration = document[_CONFIGURATION]
    if created_certificate is not None:
        configuration["certificateId"] = created_certificate.certificate_arn
        configuration["certificate"] = {"env": IOT_CERTIFICATE_ENV}
        configuration["privateKey"] = {"env": IOT_PRIVATE_KEY_ENV}
    configuration["broker"] = None
    if endpoint is not None:
        configuration["broker"] = {"host": endpoint}
    return ContainerConnection(document=document, secret_envs=tuple(secret_envs))
