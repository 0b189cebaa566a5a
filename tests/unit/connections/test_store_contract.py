"""The store contract, run against both stores: embedded SQLite and DynamoDB + Secrets Manager (moto)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bridge_container.connections.dynamodb_store import DynamoDbConnectionStore, DynamoDbStoreSettings
from bridge_container.connections.exceptions import (
    ConnectionNotFoundError,
    DuplicateAccountError,
    StaleWriteError,
)
from bridge_container.connections.sqlite_store import SECRETS_NAME, SqliteConnectionStore
from bridge_container.connections.store import AccountKey, ConnectionStore
from bridge_domain.connection import Connection
from bridge_domain.loading import parse_connection
from bridge_domain.secrets import reveal
from devtools.pki import CertPair, DevPki
from tests.unit.connections.support import AS_KEY, SECRET_ACCESS_KEY, seed_body

TABLE = "connections"
HOME = AccountKey("123456789012", "eu-central-1")
ELSEWHERE = AccountKey("123456789012", "us-east-1")


@pytest.fixture(scope="module")
def cert(pki: DevPki) -> CertPair:
    return pki.client("store-bridge")


@pytest.fixture
def connection(cert: CertPair) -> Connection:
    return parse_connection(seed_body(cert))


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "connectionId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "connectionId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield


class IsolatedTransactions:
    """A DynamoDB client whose transactions are isolated from each other, as DynamoDB's are.

    moto checks a transaction's conditions and applies its writes without any lock, so two threads can both pass
    the same condition; the lock stands in for the isolation the real service gives.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def transact_write_items(self, **kwargs: Any) -> Any:
        with self._lock:
            return self._client.transact_write_items(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _dynamodb_store() -> DynamoDbConnectionStore:
    return DynamoDbConnectionStore(
        DynamoDbStoreSettings(TABLE), IsolatedTransactions(boto3.client("dynamodb")), boto3.client("secretsmanager")
    )


@pytest.fixture(params=["sqlite", "dynamodb"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConnectionStore]:
    if request.param == "sqlite":
        opened: ConnectionStore = SqliteConnectionStore(tmp_path / "state")
    else:
        request.getfixturevalue("aws")
        opened = _dynamodb_store()
    yield opened
    await opened.close()


def renamed(connection: Connection, name: str) -> Connection:
    return connection.model_copy(update={"name": name})


async def test_created_connection_reads_back_with_its_secrets(store: ConnectionStore, connection: Connection) -> None:
    created = await store.create("c1", connection, HOME)
    read = await store.get("c1")
    assert created.version == read.version == 1
    assert read.account == HOME
    assert reveal(read.connection.configuration.secret_access_key) == SECRET_ACCESS_KEY
    assert reveal(read.connection.configuration.private_key) == reveal(connection.configuration.private_key)
    assert reveal(read.connection.configuration.lns[0].as_key) == AS_KEY  # type: ignore[union-attr]
    assert read.connection == connection


async def test_second_connection_for_the_same_account_and_region_is_refused(
    store: ConnectionStore, connection: Connection
) -> None:
    await store.create("c1", connection, HOME)
    with pytest.raises(DuplicateAccountError) as caught:
        await store.create("c2", renamed(connection, "other"), HOME)
    assert caught.value.owner == "c1"
    assert [record.connection_id for record in await store.list()] == ["c1"]
    await store.create("c3", renamed(connection, "other region"), ELSEWHERE)
    assert {record.connection_id for record in await store.list()} == {"c1", "c3"}


async def test_replace_increments_the_version_and_refuses_a_stale_one(
    store: ConnectionStore, connection: Connection
) -> None:
    await store.create("c1", connection, HOME)
    replaced = await store.replace("c1", renamed(connection, "v2"), HOME, expected_version=1)
    assert replaced.version == 2
    assert (await store.get("c1")).connection.name == "v2"
    with pytest.raises(StaleWriteError):
        await store.replace("c1", renamed(connection, "lost update"), HOME, expected_version=1)
    assert (await store.get("c1")).connection.name == "v2"


async def test_replace_moves_the_account_claim(store: ConnectionStore, connection: Connection) -> None:
    await store.create("c1", connection, HOME)
    await store.create("c2", renamed(connection, "two"), ELSEWHERE)
    with pytest.raises(DuplicateAccountError):
        await store.replace("c2", renamed(connection, "two"), HOME, expected_version=1)
    await store.replace("c1", connection, AccountKey("210987654321", "eu-central-1"), expected_version=1)
    # HOME is free again once c1 moved away from it
    await store.replace("c2", renamed(connection, "two"), HOME, expected_version=1)
    assert (await store.get("c2")).account == HOME


async def test_delete_frees_the_account_and_forgets_the_connection(
    store: ConnectionStore, connection: Connection
) -> None:
    await store.create("c1", connection, HOME)
    with pytest.raises(StaleWriteError):
        await store.delete("c1", expected_version=7)
    await store.delete("c1", expected_version=1)
    with pytest.raises(ConnectionNotFoundError):
        await store.get("c1")
    with pytest.raises(ConnectionNotFoundError):
        await store.delete("c1", expected_version=1)
    await store.create("c2", connection, HOME)


async def test_unknown_connection_is_not_found(store: ConnectionStore, connection: Connection) -> None:
    with pytest.raises(ConnectionNotFoundError):
        await store.get("nope")
    with pytest.raises(ConnectionNotFoundError):
        await store.replace("nope", connection, HOME, expected_version=1)


async def test_list_is_oldest_first(store: ConnectionStore, connection: Connection) -> None:
    regions = ["eu-central-1", "eu-west-1", "us-east-1"]
    for index, region in enumerate(regions):
        await store.create(f"c{index}", renamed(connection, region), AccountKey("123456789012", region))
    assert [record.connection.name for record in await store.list()] == regions


async def test_concurrent_creates_for_one_account_let_exactly_one_win(
    store: ConnectionStore, connection: Connection
) -> None:
    outcomes = await asyncio.gather(
        *(store.create(f"c{index}", connection, HOME) for index in range(6)), return_exceptions=True
    )
    winners = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(outcome, DuplicateAccountError) for outcome in outcomes if outcome not in winners)
    assert len(await store.list()) == 1


async def test_concurrent_replaces_of_one_version_let_exactly_one_win(
    store: ConnectionStore, connection: Connection
) -> None:
    await store.create("c1", connection, HOME)
    outcomes = await asyncio.gather(
        *(store.replace("c1", renamed(connection, f"writer {i}"), HOME, expected_version=1) for i in range(6)),
        return_exceptions=True,
    )
    winners = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    assert len(winners) == 1
    assert sum(isinstance(outcome, StaleWriteError) for outcome in outcomes) == 5
    read = await store.get("c1")
    assert read.version == 2
    assert read.connection.name == winners[0].connection.name


# --- what each store keeps where -------------------------------------------------------------------------------
async def test_sqlite_keeps_secrets_out_of_the_database_in_an_owner_only_file(
    tmp_path: Path, connection: Connection
) -> None:
    store = SqliteConnectionStore(tmp_path / "state")
    await store.create("c1", connection, HOME)
    await store.close()
    database = (tmp_path / "state" / "connections.sqlite3").read_bytes()
    assert SECRET_ACCESS_KEY.encode() not in database
    assert b"PRIVATE KEY" not in database
    secrets = tmp_path / "state" / SECRETS_NAME
    assert secrets.stat().st_mode & 0o777 == 0o600
    assert SECRET_ACCESS_KEY in secrets.read_text()


async def test_sqlite_connections_survive_a_restart_and_old_secret_versions_are_pruned(
    tmp_path: Path, connection: Connection
) -> None:
    first = SqliteConnectionStore(tmp_path / "state")
    await first.create("c1", connection, HOME)
    rotated = connection.model_copy(
        update={
            "configuration": connection.configuration.model_copy(
                update={"secret_access_key": None, "access_key_id": None}
            )
        }
    )
    await first.replace("c1", rotated, HOME, expected_version=1)
    await first.close()
    second = SqliteConnectionStore(tmp_path / "state")
    read = await second.get("c1")
    await second.close()
    assert read.version == 2
    assert read.connection == rotated
    assert SECRET_ACCESS_KEY not in (tmp_path / "state" / SECRETS_NAME).read_text()


@pytest.mark.usefixtures("aws")
async def test_dynamodb_keeps_secret_values_in_secrets_manager(connection: Connection) -> None:
    store = _dynamodb_store()
    await store.create("c1", connection, HOME)
    items = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    assert SECRET_ACCESS_KEY not in json.dumps(items)
    assert {item["connectionId"]["S"] for item in items} == {"c1", "account#123456789012/eu-central-1"}
    (item,) = [item for item in items if item["connectionId"]["S"] == "c1"]
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=item["secretArn"]["S"])
    assert SECRET_ACCESS_KEY in secret["SecretString"]
    await store.delete("c1", expected_version=1)
    assert boto3.client("dynamodb").scan(TableName=TABLE)["Items"] == []
