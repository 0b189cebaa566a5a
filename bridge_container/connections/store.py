"""The connection store interface, shared by the embedded SQLite store and the DynamoDB store.

Every write is conditional: ``create`` fails if the id or the (account, region) pair is taken, ``replace``
and ``delete`` fail unless the record still has the version the caller read. Secret values never sit in the
main record: the SQLite store keeps them in an owner-only file, the DynamoDB store in Secrets Manager.
"""

from __future__ import annotations

import abc
import asyncio
import builtins
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

from pydantic import ValidationError

from bridge_container.connections.documents import Document, join_secrets, split_secrets
from bridge_container.connections.exceptions import StoreError
from bridge_domain.connection import Connection
from bridge_domain.loading import issues_from


@dataclass(frozen=True, slots=True)
class AccountKey:
    """One connection per AWS account and region (the seed's rule): the key the store keeps unique."""

    account_id: str
    region: str

    def __str__(self) -> str:
        return f"{self.account_id}/{self.region}"

    @classmethod
    def parse(cls, text: str) -> AccountKey:
        account_id, _, region = text.partition("/")
        return cls(account_id, region)


@dataclass(frozen=True, slots=True)
class StoredConnection:
    """A connection as stored: the validated model (secrets included), its account key and version."""

    connection_id: str
    connection: Connection
    account: AccountKey
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class StorableConnection:
    """What a store writes: the public document and the secret values, split once."""

    public: Document
    secrets: dict[str, str]

    @classmethod
    def of(cls, connection: Connection) -> StorableConnection:
        public, secrets = split_secrets(connection)
        return cls(public, secrets)


def restore_connection(public: Document, secrets: dict[str, str], connection_id: str) -> Connection:
    """Rebuild the model from what a store read; a record that no longer validates is a store error."""
    try:
        return Connection.model_validate(join_secrets(public, secrets))
    except ValidationError as exc:
        problems = "; ".join(str(issue) for issue in issues_from(exc))
        raise StoreError(f"stored connection {connection_id!r} no longer validates: {problems}") from None


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class ConnectionStore(Protocol):
    """Durable connections; safe under concurrent requests through conditional writes."""

    async def create(self, connection_id: str, connection: Connection, account: AccountKey) -> StoredConnection:
        """Store a new connection; DuplicateAccountError if its account and region are taken."""
        ...

    async def replace(
        self, connection_id: str, connection: Connection, account: AccountKey, expected_version: int
    ) -> StoredConnection:
        """Replace a connection whole; StaleWriteError unless it is still at ``expected_version``."""
        ...

    async def delete(self, connection_id: str, expected_version: int) -> None:
        """Delete a connection and its secrets; StaleWriteError unless it is still at ``expected_version``."""
        ...

    async def get(self, connection_id: str) -> StoredConnection:
        """The connection, or ConnectionNotFoundError."""
        ...

    async def list(self) -> list[StoredConnection]:
        """Every connection, oldest first."""
        ...

    async def close(self) -> None: ...


T = TypeVar("T")


class BlockingConnectionStore(abc.ABC):
    """A :class:`ConnectionStore` over a blocking backend, written once for both stores.

    Each operation runs its blocking twin (``_create`` ...) in a worker thread, so the event loop never waits on
    the backend; the backend's own errors (``backend_errors``) become :class:`StoreError` (``_store_error``).
    """

    backend_errors: ClassVar[tuple[type[Exception], ...]]

    @abc.abstractmethod
    def _store_error(self, exc: Exception) -> StoreError: ...

    @abc.abstractmethod
    def _create(self, connection_id: str, connection: Connection, account: AccountKey) -> StoredConnection: ...

    @abc.abstractmethod
    def _replace(
        self, connection_id: str, connection: Connection, account: AccountKey, expected_version: int
    ) -> StoredConnection: ...

    @abc.abstractmethod
    def _delete(self, connection_id: str, expected_version: int) -> None: ...

    @abc.abstractmethod
    def _get(self, connection_id: str) -> StoredConnection: ...

    @abc.abstractmethod
    def _list(self) -> builtins.list[StoredConnection]: ...

    async def _run(self, function: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(function)
        except self.backend_errors as exc:
            raise self._store_error(exc) from exc

    async def create(self, connection_id: str, connection: Connection, account: AccountKey) -> StoredConnection:
        return await self._run(lambda: self._create(connection_id, connection, account))

    async def replace(
        self, connection_id: str, connection: Connection, account: AccountKey, expected_version: int
    ) -> StoredConnection:
        return await self._run(lambda: self._replace(connection_id, connection, account, expected_version))

    async def delete(self, connection_id: str, expected_version: int) -> None:
        await self._run(lambda: self._delete(connection_id, expected_version))

    async def get(self, connection_id: str) -> StoredConnection:
        return await self._run(lambda: self._get(connection_id))

    async def list(self) -> builtins.list[StoredConnection]:
        return await self._run(self._list)

    async def close(self) -> None:
        return None
