"""The device-status table: one item per thing, written only when the change is not older than what is stored.

Item (partition key ``thingName``)::

    connected            BOOL  last known connection status
    connectionChangedAt  N     when it changed, epoch milliseconds
    connectionSource     S     presence | shadow
    connectionSequence   N     presence versionNumber or shadow version (orders one source at one instant)
    disconnectReason     S     from the presence event, when it gave one
    reported             M     the shadow's reported state
    shadowVersion        N     the shadow version that state belongs to
    shadowUpdatedAt      N     epoch milliseconds

Late arrivals lose: a connection change older than the stored one, and a shadow version lower than the stored
one, fail the condition and change nothing. An equal version is written again (same data), so a change whose
webhook delivery failed is re-sent when the message is processed again.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from lambdas.status_callback.models import ConnectionChange, StateChange

_CONNECTION_CONDITION = (
    "attribute_not_exists(connectionChangedAt) OR connectionChangedAt < :at"
    " OR (connectionChangedAt = :at AND connectionSource = :source AND connectionSequence <= :sequence)"
)
_STATE_CONDITION = "attribute_not_exists(shadowVersion) OR shadowVersion <= :version"
_serializer = TypeSerializer()


def _attribute(value: Any) -> dict[str, Any]:
    # DynamoDB numbers must be Decimal: a JSON round trip turns every float of the shadow into one, exactly.
    converted = json.loads(json.dumps(value), parse_float=Decimal)
    serialized: dict[str, Any] = _serializer.serialize(converted)
    return serialized


class DeviceStatusStore:
    """Conditional writes to the device-status table through a low-level DynamoDB client."""

    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._client = dynamodb_client
        self._table = table_name

    def _update(self, thing_name: str, update: str, condition: str, values: dict[str, Any]) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"thingName": {"S": thing_name}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues={name: _attribute(value) for name, value in values.items()},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def record_connection(self, change: ConnectionChange) -> bool:
        """Store the connection status; False when a newer one is already stored."""
        values: dict[str, Any] = {
            ":connected": change.connected,
            ":at": change.at_ms,
            ":source": change.source.value,
            ":sequence": change.sequence,
        }
        update = (
            "SET connected = :connected, connectionChangedAt = :at, connectionSource = :source,"
            " connectionSequence = :sequence"
        )
        if change.disconnect_reason is None:
            update += " REMOVE disconnectReason"
        else:
            update += ", disconnectReason = :reason"
            values[":reason"] = change.disconnect_reason
        return self._update(change.thing_name, update, _CONNECTION_CONDITION, values)

    def record_state(self, change: StateChange) -> bool:
        """Store the reported state; False when a higher shadow version is already stored."""
        return self._update(
            change.thing_name,
            "SET reported = :reported, shadowVersion = :version, shadowUpdatedAt = :at",
            _STATE_CONDITION,
            {":reported": change.reported, ":version": change.version, ":at": change.at_ms},
        )
