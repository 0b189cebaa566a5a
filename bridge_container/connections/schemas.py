"""Response bodies of the Connections API, and the request body's JSON schema for the OpenAPI document."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from bridge_container.connections.documents import public_view
from bridge_container.connections.store import StoredConnection
from bridge_container.states import ConnectionState, StateReport
from bridge_domain.connection import Connection
from bridge_domain.exceptions import FieldIssue


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True)


class ClientStatus(_Body):
    """One MQTT client of the connection's pool on the bridge task that answered."""

    client_id: str
    state: ConnectionState
    reason: str | None = Field(description="Why it is not OPENED: its last connection error; null when OPENED.")


class ConnectionStatus(_Body):
    """Where the connection goes and how it stands on the bridge task that answered."""

    state: ConnectionState = Field(description="Live state of the connection's MQTT pool on this bridge task.")
    reason: str | None = Field(
        description="Why the state is not OPENED (e.g. 'cannot start: the connection has no endpoint: ...', or a "
        "client's last connection error); null when OPENED."
    )
    clients: list[ClientStatus] = Field(description="Each MQTT client of the pool on this task.")
    endpoint: str | None = Field(
        description="Broker host: the override, else <accountPrefix>.iot.<region>.amazonaws.com."
    )
    port: int
    protocol: Literal["SSL", "WSS"]
    certificate_id: str | None = Field(description="Certificate ARN or id; null while the protocol is WSS.")
    account_id: str = Field(description="AWS account the connection serves (one connection per account and region).")
    region: str


class ConnectionView(_Body):
    """A stored connection as responses show it: secrets masked, certificate fields hidden while WSS."""

    connection_id: str
    connector_id: Literal["actility-aws-iot"]
    name: str
    configuration: dict[str, Any] = Field(
        description="The configuration as sent, with defaults filled in; secret values read '**********'."
    )
    status: ConnectionStatus
    warnings: list[str] = Field(description="Problems that do not stop the connection but deserve attention.")
    version: int = Field(description="Increments with every replacement.")
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, record: StoredConnection, report: StateReport) -> ConnectionView:
        connection = record.connection
        configuration = connection.configuration
        document = public_view(connection)
        return cls(
            connection_id=record.connection_id,
            connector_id=connection.connector_id,
            name=connection.name,
            configuration=document["configuration"],
            status=ConnectionStatus(
                state=report.state,
                reason=report.reason,
                clients=[
                    ClientStatus(client_id=client.client_id, state=client.state, reason=client.reason)
                    for client in report.clients
                ],
                endpoint=configuration.endpoint,
                port=configuration.port,
                protocol=configuration.protocol,
                certificate_id=configuration.certificate_id if configuration.protocol == "SSL" else None,
                account_id=record.account.account_id,
                region=record.account.region,
            ),
            warnings=configuration.warnings(),
            version=record.version,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class ConnectionList(_Body):
    connections: list[ConnectionView]


class Issue(_Body):
    path: str = Field(description="Field path in the request body, e.g. configuration.region.")
    message: str


class ErrorBody(_Body):
    """Every error response: a stable code, a sentence, and for 422 every field problem at once."""

    error: str = Field(description="Stable error code, e.g. duplicate_account.")
    message: str
    issues: list[Issue] = Field(default_factory=list)

    @classmethod
    def of(cls, error: str, message: str, issues: tuple[FieldIssue, ...] = ()) -> ErrorBody:
        return cls(error=error, message=message, issues=[Issue(path=i.path, message=i.message) for i in issues])


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            return _inline(definitions[reference.removeprefix("#/$defs/")], definitions)
        # The discriminator's mapping points into $defs, which inlining removes; oneOf + const kind suffice.
        return {
            key: _inline(value, definitions) for key, value in node.items() if key not in ("$defs", "discriminator")
        }
    if isinstance(node, list):
        return [_inline(value, definitions) for value in node]
    return node


def connection_request_schema() -> dict[str, Any]:
    """The JSON schema of a POST/PUT body, self-contained (no $defs) so it can sit inline in the OpenAPI document."""
    schema = copy.deepcopy(Connection.model_json_schema(by_alias=True, mode="validation"))
    inlined: dict[str, Any] = _inline(schema, schema.get("$defs", {}))
    return inlined
