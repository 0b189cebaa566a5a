"""Secret fields: never shown in repr, logs, errors or dumps unless explicitly revealed.

A secret is accepted in three forms, all in the JSON that also POST /connections takes:

* inline: ``"privateKey": "-----BEGIN ..."``
* from the environment: ``"privateKey": {"env": "BRIDGE_PRIVATE_KEY"}`` (read when the configuration is validated)
* from Secrets Manager: ``"privateKey": {"secretsManager": {"secretId": "arn:...", "jsonKey": "privateKey"}}``
  (kept as a reference until :func:`resolve_secret_references` fetches it)

Dumps show ``"**********"`` for a secret value; pass ``context={REVEAL_SECRETS: True}`` to
``model_dump`` to get the value, which only the storage layer does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, SecretStr, SerializationInfo

from bridge_domain.exceptions import SecretReferenceError

REVEAL_SECRETS = "reveal_secrets"
MASK = "**********"


class SecretsManagerRef(BaseModel):
    """Where to fetch a secret from: a Secrets Manager secret id or ARN, optionally one key of its JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    secret_id: str = Field(alias="secretId", min_length=1, max_length=2048)
    json_key: str | None = Field(default=None, alias="jsonKey", min_length=1)


def _parse_secret_input(value: object) -> object:
    if isinstance(value, SecretStr | SecretsManagerRef):
        return value
    if isinstance(value, str):
        return SecretStr(value)
    if isinstance(value, dict):
        if set(value) == {"env"} and isinstance(value["env"], str):
            name = value["env"]
            found = os.environ.get(name)
            if found is None:
                raise ValueError(f"environment variable {name} is not set")
            return SecretStr(found)
        if set(value) == {"secretsManager"}:
            return SecretsManagerRef.model_validate(value["secretsManager"])
    raise ValueError('expected a string, {"env": NAME} or {"secretsManager": {"secretId": ..., "jsonKey": ...}}')


def _serialize_secret(value: SecretStr | SecretsManagerRef, info: SerializationInfo) -> object:
    if isinstance(value, SecretsManagerRef):
        return {"secretsManager": value.model_dump(by_alias=True, exclude_none=True)}
    context = info.context
    if isinstance(context, dict) and context.get(REVEAL_SECRETS):
        return value.get_secret_value()
    return MASK


SecretInput = Annotated[
    SecretStr | SecretsManagerRef,
    BeforeValidator(_parse_secret_input),
    PlainSerializer(_serialize_secret, return_type=Any),
]


def reveal(value: SecretStr | SecretsManagerRef | None) -> str | None:
    """The plain value of an already-resolved secret; a Secrets Manager reference must be resolved first."""
    if value is None:
        return None
    if isinstance(value, SecretsManagerRef):
        raise ValueError(f"secret {value.secret_id} has not been fetched from Secrets Manager yet")
    return value.get_secret_value()


SecretFetcher = Callable[[SecretsManagerRef], str]


def replace_references(document: object, fetch: SecretFetcher) -> object:
    """Return ``document`` (a revealed dump) with every Secrets Manager reference replaced by its value."""
    if isinstance(document, dict):
        if set(document) == {"secretsManager"}:
            return fetch(SecretsManagerRef.model_validate(document["secretsManager"]))
        return {key: replace_references(item, fetch) for key, item in document.items()}
    if isinstance(document, list):
        return [replace_references(item, fetch) for item in document]
    return document


def secrets_manager_fetcher(client: Any) -> SecretFetcher:
    """A :data:`SecretFetcher` reading with ``client`` (a boto3 ``secretsmanager`` client)."""

    def fetch(reference: SecretsManagerRef) -> str:
        try:
            secret_string = str(client.get_secret_value(SecretId=reference.secret_id)["SecretString"])
        except Exception as exc:  # botocore's errors, wrapped so callers handle one domain error
            raise SecretReferenceError(f"secret {reference.secret_id} could not be read: {exc}") from exc
        if reference.json_key is None:
            return secret_string
        try:
            value = json.loads(secret_string).get(reference.json_key)
        except (ValueError, AttributeError):
            value = None
        if not isinstance(value, str):
            raise SecretReferenceError(f"secret {reference.secret_id} has no string key {reference.json_key!r}")
        return value

    return fetch
