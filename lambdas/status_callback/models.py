"""Parser models of what the IoT rules publish to SNS (RAW message format), and the changes derived from them.

The function expects these rules (SQL version ``2016-03-23``, SNS action with ``messageFormat: RAW``):

``enebular_status_push_rule`` → ``enebular_status_push_sns``: changes of the agent's reported connection flag::

    SELECT *, topic(3) AS thingName FROM '$aws/things/+/shadow/update/documents'
    WHERE isUndefined(current.state.reported.enebular.awsiot.connected) = false
      AND (isUndefined(previous.state.reported.enebular.awsiot.connected)
           OR previous.state.reported.enebular.awsiot.connected <> current.state.reported.enebular.awsiot.connected)

a presence rule → ``enebular_status_push_sns``: lifecycle events as AWS IoT publishes them (one rule has one
FROM topic, so presence needs a rule of its own; the bridge's own MQTT clients are left out by their prefix)::

    SELECT * FROM '$aws/events/presence/+/+' WHERE NOT startswith(clientId, '<bridge client-ID prefix>')

``enebular_devicestate_push_rule`` → ``enebular_devicestate_push_sns``: every shadow update::

    SELECT *, topic(3) AS thingName FROM '$aws/things/+/shadow/update/documents'
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, NonNegativeInt, RootModel, StrictBool, Tag

MS_PER_SEC = 1000
ThingName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9:_-]{1,128}$")]
ClientId = Annotated[str, Field(min_length=1, max_length=128)]


class ConnectionSource(StrEnum):
    """Where a connection status came from."""

    PRESENCE = "presence"
    SHADOW = "shadow"


@dataclass(frozen=True, slots=True)
class ConnectionChange:
    """A thing connected or disconnected at ``at_ms``; ``sequence`` orders changes of one source at one instant."""

    thing_name: str
    connected: bool
    at_ms: int
    source: ConnectionSource
    sequence: int
    disconnect_reason: str | None = None


@dataclass(frozen=True, slots=True)
class StateChange:
    """The thing's reported shadow state as of shadow ``version``."""

    thing_name: str
    reported: dict[str, Any]
    version: int
    at_ms: int


class _Message(BaseModel):
    # Unknown fields are kept out rather than refused: AWS adds fields to its events over time.
    model_config = ConfigDict(frozen=True, extra="ignore")


class ShadowState(_Message):
    desired: dict[str, Any] | None = None
    reported: dict[str, Any] | None = None


class ShadowDocument(_Message):
    state: ShadowState
    version: NonNegativeInt
    metadata: dict[str, Any] = Field(default_factory=dict)


class ShadowDocumentsMessage(_Message):
    """``$aws/things/<thing>/shadow/update/documents`` plus ``thingName`` (``topic(3)``) added by the rule."""

    thing_name: ThingName = Field(alias="thingName")
    previous: ShadowDocument | None = None
    current: ShadowDocument
    timestamp: NonNegativeInt  # seconds since the epoch
    client_token: str | None = Field(default=None, alias="clientToken")

    def reported_connected(self) -> bool | None:
        """``current.state.reported.enebular.awsiot.connected`` when it is a boolean."""
        node: Any = self.current.state.reported or {}
        for key in ("enebular", "awsiot", "connected"):
            node = node.get(key) if isinstance(node, dict) else None
        return node if isinstance(node, bool) else None

    def to_state_change(self) -> StateChange:
        return StateChange(
            thing_name=self.thing_name,
            reported=dict(self.current.state.reported or {}),
            version=self.current.version,
            at_ms=self.timestamp * MS_PER_SEC,
        )


class PresenceEvent(_Message):
    """``$aws/events/presence/{connected,disconnected}/<clientId>``; the client ID is the thing name."""

    client_id: ClientId = Field(alias="clientId")
    timestamp: NonNegativeInt  # milliseconds since the epoch
    event_type: Literal["connected", "disconnected"] = Field(alias="eventType")
    version_number: NonNegativeInt = Field(default=0, alias="versionNumber")
    session_identifier: str | None = Field(default=None, alias="sessionIdentifier")
    client_initiated_disconnect: StrictBool | None = Field(default=None, alias="clientInitiatedDisconnect")
    disconnect_reason: str | None = Field(default=None, alias="disconnectReason")

    def to_connection_change(self) -> ConnectionChange:
        return ConnectionChange(
            thing_name=self.client_id,
            connected=self.event_type == "connected",
            at_ms=self.timestamp,
            source=ConnectionSource.PRESENCE,
            sequence=self.version_number,
            disconnect_reason=self.disconnect_reason,
        )


def _status_kind(value: Any) -> str:
    # Presence events carry clientId/eventType, shadow documents never do: pick the model whose errors make sense.
    is_presence = isinstance(value, dict) and ("eventType" in value or "clientId" in value)
    return "presence" if is_presence else "shadow"


_StatusUnion = Annotated[
    Annotated[PresenceEvent, Tag("presence")] | Annotated[ShadowDocumentsMessage, Tag("shadow")],
    Discriminator(_status_kind),
]


class StatusMessage(RootModel[_StatusUnion]):
    """What arrives on ``enebular_status_push_sns``: a presence event or a connection-flag shadow change."""

    def to_connection_change(self) -> ConnectionChange:
        message = self.root
        if isinstance(message, PresenceEvent):
            return message.to_connection_change()
        connected = message.reported_connected()
        if connected is None:
            raise ValueError("shadow document has no boolean state.reported.enebular.awsiot.connected")
        return ConnectionChange(
            thing_name=message.thing_name,
            connected=connected,
            at_ms=message.timestamp * MS_PER_SEC,
            source=ConnectionSource.SHADOW,
            sequence=message.current.version,
        )
