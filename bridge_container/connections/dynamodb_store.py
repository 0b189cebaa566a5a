"""The deployed store: connections in DynamoDB (key ``connectionId``), their secret values in Secrets Manager.

Each connection is one item plus an account-claim item (key ``account#<account>/<region>``) in the same table;
both are written in one transaction with conditions, so two tasks racing to create connections for one
account and region cannot both win, and a replace only lands on the version its caller read. A connection's
secrets are one Secrets Manager secret; the item names the exact secret version it was written with.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bridge_container.connections.exceptions import (
    ConnectionConflictError,
    ConnectionNotFoundError,
    DuplicateAccountError,
    StaleWriteError,
    StoreError,
)
from bridge_container.connections.store import (
    AccountKey,
    BlockingConnectionStore,
    StorableConnection,
    StoredConnection,
    restore_connection,
    utc_now,
)
from bridge_container.settings import DEFAULT_CONNECTION_SECRETS_PREFIX
from bridge_domain.connection import Connection
from bridge_domain.naming import CREATED_BY_ATTRIBUTE, CREATED_BY_VALUE

logger = logging.getLogger(__name__)

KEY = "connectionId"
CLAIM_PREFIX = "account#"
RECORD_CONNECTION = "connection"
RECORD_CLAIM = "account-claim"
DELETED_SECRET_RECOVERY_DAYS = 7


@dataclass(frozen=True, slots=True)
class DynamoDbStoreSettings:
    """Where the deployed store lives."""

    table_name: str
    secret_name_prefix: str = DEFAULT_CONNECTION_SECRETS_PREFIX


def _claim_key(account: AccountKey) -> str:
    return f"{CLAIM_PREFIX}{account}"


def _reasons(error: ClientError) -> list[str]:
    """The ``Code`` of each transaction item's cancellation reason, in item order."""
    reasons = error.response.get("CancellationReasons") or []
    return [str(reason.get("Code", "None")) for reason in reasons]


class DynamoDbConnectionStore(BlockingConnectionStore):
    """:class:`~bridge_container.connections.store.ConnectionStore` on DynamoDB and Secrets Manager."""

    def __init__(self, settings: DynamoDbStoreSettings, dynamodb: Any, secretsmanager: Any) -> None:
        self.settings = settings
        self._dynamodb = dynamodb
        self._secrets = secretsmanager

    backend_errors = (ClientError, BotoCoreError)

    def _store_error(self, exc: Exception) -> StoreError:
        return StoreError(f"connection store failed: {exc}")

    # --- items -------------------------------------------------------------------------------------------------
    def _item(self, connection_id: str) -> dict[str, Any] | None:
        response = self._dynamodb.get_item(
            TableName=self.settings.table_name, Key={KEY: {"S": connection_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        if item is None or item.get("recordType", {}).get("S") != RECORD_CONNECTION:
            return None
        return dict(item)

    def _connection_item(
        self,
        connection_id: str,
        storable: StorableConnection,
        account: AccountKey,
        version: int,
        secret: tuple[str, str],
        created_at: dt.datetime,
        updated_at: dt.datetime,
    ) -> dict[str, Any]:
        secret_arn, secret_version = secret
        return {
            KEY: {"S": connection_id},
            "recordType": {"S": RECORD_CONNECTION},
            "accountKey": {"S": str(account)},
            "version": {"N": str(version)},
            "document": {"S": json.dumps(storable.public)},
            "secretArn": {"S": secret_arn},
            "secretVersionId": {"S": secret_version},
            "createdAt": {"S": created_at.isoformat()},
            "updatedAt": {"S": updated_at.isoformat()},
        }

    def _claim_put(self, account: AccountKey, connection_id: str) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.settings.table_name,
                "Item": {
                    KEY: {"S": _claim_key(account)},
                    "recordType": {"S": RECORD_CLAIM},
                    "owner": {"S": connection_id},
                },
                "ConditionExpression": "attribute_not_exists(#key) OR #owner = :owner",
                "ExpressionAttributeNames": {"#key": KEY, "#owner": "owner"},
                "ExpressionAttributeValues": {":owner": {"S": connection_id}},
            }
        }

    def _claim_delete(self, account: AccountKey, connection_id: str) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self.settings.table_name,
                "Key": {KEY: {"S": _claim_key(account)}},
                "ConditionExpression": "attribute_not_exists(#key) OR #owner = :owner",
                "ExpressionAttributeNames": {"#key": KEY, "#owner": "owner"},
                "ExpressionAttributeValues": {":owner": {"S": connection_id}},
            }
        }

    def _claim_owner(self, account: AccountKey) -> str | None:
        response = self._dynamodb.get_item(
            TableName=self.settings.table_name, Key={KEY: {"S": _claim_key(account)}}, ConsistentRead=True
        )
        owner = response.get("Item", {}).get("owner", {}).get("S")
        return None if owner is None else str(owner)

    def _record(self, item: dict[str, Any]) -> StoredConnection:
        connection_id = item[KEY]["S"]
        secret = self._secrets.get_secret_value(SecretId=item["secretArn"]["S"], VersionId=item["secretVersionId"]["S"])
        values: dict[str, str] = json.loads(secret["SecretString"])
        return StoredConnection(
            connection_id=connection_id,
            connection=restore_connection(json.loads(item["document"]["S"]), values, connection_id),
            account=AccountKey.parse(item["accountKey"]["S"]),
            version=int(item["version"]["N"]),
            created_at=dt.datetime.fromisoformat(item["createdAt"]["S"]),
            updated_at=dt.datetime.fromisoformat(item["updatedAt"]["S"]),
        )

    def _transact(self, items: list[dict[str, Any]]) -> list[str] | None:
        """Run a transaction; the cancellation codes when a condition failed, None on success."""
        try:
            self._dynamodb.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                return _reasons(exc)
            raise
        return None

    # --- operations --------------------------------------------------------------------------------------------
    def _create(self, connection_id: str, connection: Connection, account: AccountKey) -> StoredConnection:
        storable = StorableConnection.of(connection)
        created = self._secrets.create_secret(
            Name=f"{self.settings.secret_name_prefix}{connection_id}",
            Description=f"Secret values of aws-iot-bridge connection {connection_id}",
            SecretString=json.dumps(storable.secrets),
            Tags=[{"Key": CREATED_BY_ATTRIBUTE, "Value": CREATED_BY_VALUE}],
        )
        secret = (str(created["ARN"]), str(created["VersionId"]))
        now = utc_now()
        item = self._connection_item(connection_id, storable, account, 1, secret, now, now)
        reasons = self._transact(
            [
                {
                    "Put": {
                        "TableName": self.settings.table_name,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(#key)",
                        "ExpressionAttributeNames": {"#key": KEY},
                    }
                },
                self._claim_put(account, connection_id),
            ]
        )
        if reasons is not None:
            self._secrets.delete_secret(SecretId=secret[0], ForceDeleteWithoutRecovery=True)
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise DuplicateAccountError(str(account), self._claim_owner(account))
            raise ConnectionConflictError(f"connection {connection_id!r} already exists")
        return StoredConnection(connection_id, connection, account, 1, now, now)

    def _replace(
        self, connection_id: str, connection: Connection, account: AccountKey, expected_version: int
    ) -> StoredConnection:
        current = self._item(connection_id)
        if current is None:
            raise ConnectionNotFoundError(connection_id)
        if int(current["version"]["N"]) != expected_version:
            raise StaleWriteError(connection_id)
        old_account = AccountKey.parse(current["accountKey"]["S"])
        storable = StorableConnection.of(connection)
        secret_arn, old_secret_version = current["secretArn"]["S"], current["secretVersionId"]["S"]
        put = self._secrets.put_secret_value(SecretId=secret_arn, SecretString=json.dumps(storable.secrets))
        new_secret_version = str(put["VersionId"])
        now = utc_now()
        version = expected_version + 1
        created_at = dt.datetime.fromisoformat(current["createdAt"]["S"])
        item = self._connection_item(
            connection_id, storable, account, version, (secret_arn, new_secret_version), created_at, now
        )
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.settings.table_name,
                    "Item": item,
                    "ConditionExpression": "#version = :expected",
                    "ExpressionAttributeNames": {"#version": "version"},
                    "ExpressionAttributeValues": {":expected": {"N": str(expected_version)}},
                }
            }
        ]
        if account != old_account:
            items += [self._claim_put(account, connection_id), self._claim_delete(old_account, connection_id)]
        reasons = self._transact(items)
        if reasons is not None:
            self._restore_current_secret(secret_arn, old_secret_version, new_secret_version)
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise DuplicateAccountError(str(account), self._claim_owner(account))
            raise StaleWriteError(connection_id)
        return StoredConnection(connection_id, connection, account, version, created_at, now)

    def _restore_current_secret(self, secret_arn: str, old_version: str, new_version: str) -> None:
        """After a refused write, the stored record still names the old secret version: make it current again."""
        try:
            self._secrets.update_secret_version_stage(
                SecretId=secret_arn,
                VersionStage="AWSCURRENT",
                MoveToVersionId=old_version,
                RemoveFromVersionId=new_version,
            )
        except (ClientError, BotoCoreError):
            # The record reads its secret by version id, so this only tidies the staging labels.
            logger.warning("could not move AWSCURRENT back on secret %s", secret_arn)

    def _delete(self, connection_id: str, expected_version: int) -> None:
        current = self._item(connection_id)
        if current is None:
            raise ConnectionNotFoundError(connection_id)
        account = AccountKey.parse(current["accountKey"]["S"])
        reasons = self._transact(
            [
                {
                    "Delete": {
                        "TableName": self.settings.table_name,
                        "Key": {KEY: {"S": connection_id}},
                        "ConditionExpression": "#version = :expected",
                        "ExpressionAttributeNames": {"#version": "version"},
                        "ExpressionAttributeValues": {":expected": {"N": str(expected_version)}},
                    }
                },
                self._claim_delete(account, connection_id),
            ]
        )
        if reasons is not None:
            raise StaleWriteError(connection_id)
        self._secrets.delete_secret(
            SecretId=current["secretArn"]["S"], RecoveryWindowInDays=DELETED_SECRET_RECOVERY_DAYS
        )

    def _get(self, connection_id: str) -> StoredConnection:
        item = self._item(connection_id)
        if item is None:
            raise ConnectionNotFoundError(connection_id)
        return self._record(item)

    def _list(self) -> list[StoredConnection]:
        paginator = self._dynamodb.get_paginator("scan")
        items: list[dict[str, Any]] = []
        for page in paginator.paginate(
            TableName=self.settings.table_name,
            ConsistentRead=True,
            FilterExpression="recordType = :kind",
            ExpressionAttributeValues={":kind": {"S": RECORD_CONNECTION}},
        ):
            items.extend(page.get("Items", []))
        records = [self._record(item) for item in items]
        return sorted(records, key=lambda record: (record.created_at, record.connection_id))
