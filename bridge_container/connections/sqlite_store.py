"""The embedded store for local mode: connections in a SQLite file, their secrets in an owner-only JSON file.

Writes hold a lock file (so two processes on one state directory cannot interleave) and a SQLite write
transaction; the secrets file is replaced atomically before the transaction commits and keyed by record
version, so a crash between the two never pairs a record with the wrong secrets.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
from bridge_domain.connection import Connection

logger = logging.getLogger(__name__)

DATABASE_NAME = "connections.sqlite3"
SECRETS_NAME = "connection-secrets.json"
LOCK_NAME = "connections.lock"
OWNER_ONLY = 0o600
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS connections (
    connection_id TEXT PRIMARY KEY,
    account_key TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    document TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""
_COLUMNS = "connection_id, account_key, version, document, created_at, updated_at"

SecretsByVersion = dict[str, dict[str, dict[str, str]]]  # connection id → version → JSON pointer → value


class SecretFile:
    """Secret values in one JSON file that only its owner can read (0600), replaced atomically on write."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> SecretsByVersion:
        try:
            mode = self.path.stat().st_mode & 0o777
        except FileNotFoundError:
            return {}
        if mode != OWNER_ONLY:
            logger.warning("secrets file %s had mode %o; restoring 600", self.path, mode)
            self.path.chmod(OWNER_ONLY)
        loaded: SecretsByVersion = json.loads(self.path.read_text(encoding="utf-8"))
        return loaded

    def write(self, secrets: SecretsByVersion) -> None:
        temporary = self.path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_ONLY)
        try:
            os.fchmod(descriptor, OWNER_ONLY)  # O_CREAT's mode is filtered by the umask; make sure
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(secrets, handle, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        os.replace(temporary, self.path)


class SqliteConnectionStore(BlockingConnectionStore):
    """:class:`~bridge_container.connections.store.ConnectionStore` on a SQLite file under ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state_dir = state_dir
        self.database_path = state_dir / DATABASE_NAME
        self.secrets = SecretFile(state_dir / SECRETS_NAME)
        self._lock_path = state_dir / LOCK_NAME
        self._thread_lock = threading.Lock()
        self._db = sqlite3.connect(self.database_path, isolation_level=None, check_same_thread=False)
        self.database_path.chmod(OWNER_ONLY)
        self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._db.execute(_SCHEMA)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One writer at a time: threads of this process, then other processes on the same directory."""
        with self._thread_lock:
            descriptor = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, OWNER_ONLY)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                yield
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)
                os.close(descriptor)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._exclusive():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    backend_errors = (sqlite3.Error, OSError, ValueError)

    def _store_error(self, exc: Exception) -> StoreError:
        return StoreError(f"embedded connection store failed: {type(exc).__name__}: {exc}")

    def _owner_of(self, account: AccountKey) -> str | None:
        row = self._db.execute(
            "SELECT connection_id FROM connections WHERE account_key = ?", (str(account),)
        ).fetchone()
        return None if row is None else str(row[0])

    def _write_secrets(self, connection_id: str, version: int, values: dict[str, str], *, keep: int | None) -> None:
        secrets = self.secrets.read()
        versions = {
            key: value for key, value in secrets.get(connection_id, {}).items() if keep is not None and int(key) == keep
        }
        versions[str(version)] = values
        secrets[connection_id] = versions
        self.secrets.write(secrets)

    def _prune_secrets(self, connection_id: str, version: int | None) -> None:
        """Drop secret versions no committed record refers to (all of them after a delete).

        Runs after the commit; a failure here leaves only unreferenced values behind, cleared by the next write.
        """
        try:
            with self._exclusive():
                secrets = self.secrets.read()
                if version is None:
                    secrets.pop(connection_id, None)
                elif connection_id in secrets:
                    kept = {key: value for key, value in secrets[connection_id].items() if int(key) == version}
                    secrets[connection_id] = kept
                self.secrets.write(secrets)
        except (OSError, ValueError):
            logger.exception("could not prune old secrets of connection %s", connection_id)

    def _record(self, row: tuple[Any, ...], secrets: SecretsByVersion) -> StoredConnection:
        connection_id, account_key, version, document, created_at, updated_at = row
        values = secrets.get(connection_id, {}).get(str(version))
        if values is None:
            raise StoreError(f"secrets of connection {connection_id!r} version {version} are missing")
        return StoredConnection(
            connection_id=connection_id,
            connection=restore_connection(json.loads(document), values, connection_id),
            account=AccountKey.parse(account_key),
            version=int(version),
            created_at=dt.datetime.fromisoformat(created_at),
            updated_at=dt.datetime.fromisoformat(updated_at),
        )

    def _create(self, connection_id: str, connection: Connection, account: AccountKey) -> StoredConnection:
        storable = StorableConnection.of(connection)
        now = utc_now()
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM connections WHERE connection_id = ?", (connection_id,)).fetchone():
                raise ConnectionConflictError(f"connection {connection_id!r} already exists")
            owner = self._owner_of(account)
            if owner is not None:
                raise DuplicateAccountError(str(account), owner)
            db.execute(
                f"INSERT INTO connections ({_COLUMNS}) VALUES (?, ?, 1, ?, ?, ?)",  # noqa: S608 - constant columns
                (connection_id, str(account), json.dumps(storable.public), now.isoformat(), now.isoformat()),
            )
            self._write_secrets(connection_id, 1, storable.secrets, keep=None)
        return StoredConnection(connection_id, connection, account, 1, now, now)

    def _replace(
        self, connection_id: str, connection: Connection, account: AccountKey, expected_version: int
    ) -> StoredConnection:
        storable = StorableConnection.of(connection)
        now = utc_now()
        with self._transaction() as db:
            row = db.execute(
                "SELECT version, created_at FROM connections WHERE connection_id = ?", (connection_id,)
            ).fetchone()
            if row is None:
                raise ConnectionNotFoundError(connection_id)
            if int(row[0]) != expected_version:
                raise StaleWriteError(connection_id)
            owner = self._owner_of(account)
            if owner not in (None, connection_id):
                raise DuplicateAccountError(str(account), owner)
            version = expected_version + 1
            db.execute(
                "UPDATE connections SET account_key = ?, version = ?, document = ?, updated_at = ? "
                "WHERE connection_id = ? AND version = ?",
                (str(account), version, json.dumps(storable.public), now.isoformat(), connection_id, expected_version),
            )
            self._write_secrets(connection_id, version, storable.secrets, keep=expected_version)
        self._prune_secrets(connection_id, version)
        created_at = dt.datetime.fromisoformat(row[1])
        return StoredConnection(connection_id, connection, account, version, created_at, now)

    def _delete(self, connection_id: str, expected_version: int) -> None:
        with self._transaction() as db:
            row = db.execute("SELECT version FROM connections WHERE connection_id = ?", (connection_id,)).fetchone()
            if row is None:
                raise ConnectionNotFoundError(connection_id)
            if int(row[0]) != expected_version:
                raise StaleWriteError(connection_id)
            db.execute("DELETE FROM connections WHERE connection_id = ?", (connection_id,))
        self._prune_secrets(connection_id, None)

    def _get(self, connection_id: str) -> StoredConnection:
        with self._exclusive():
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM connections WHERE connection_id = ?",  # noqa: S608 - constant columns
                (connection_id,),
            ).fetchone()
            if row is None:
                raise ConnectionNotFoundError(connection_id)
            return self._record(row, self.secrets.read())

    def _list(self) -> list[StoredConnection]:
        with self._exclusive():
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM connections ORDER BY created_at, connection_id"  # noqa: S608 - constant columns
            ).fetchall()
            secrets = self.secrets.read()
            return [self._record(row, secrets) for row in rows]

    async def close(self) -> None:
        with self._thread_lock:
            self._db.close()
