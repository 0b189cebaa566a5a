"""The Connections API's logic: validate a body, keep the store's rules, and apply each change to the runtime.

The store is the truth. Every change is written there first (conditionally), then applied to this process's
runtimes; :meth:`ConnectionCatalog.sync` brings the runtimes in line with the store, at start and
periodically, so every bridge task behind the load balancer follows changes made through any one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bridge_container.connections.accounts import AccountResolver
from bridge_container.connections.documents import fill_masked, retain_certificate, revealed_document
from bridge_container.connections.exceptions import (
    ConnectionsError,
    InvalidConnectionError,
    UnknownConnectorError,
)
from bridge_container.connections.host import ConnectionHost
from bridge_container.connections.store import ConnectionStore, StoredConnection
from bridge_container.exceptions import BridgeError, UnknownConnectionError
from bridge_container.settings import DEFAULT_SYNC_INTERVAL_SECS
from bridge_container.states import ConnectionState, StateReport
from bridge_container.tasks import spawn
from bridge_domain.connection import CONNECTOR_ID, Connection
from bridge_domain.exceptions import ConfigError, FieldIssue, SecretReferenceError
from bridge_domain.loading import parse_connection, resolve_secret_references
from bridge_domain.secrets import SecretFetcher

logger = logging.getLogger(__name__)

DOCUMENT_PATH = "(document)"
# Errors whose message says what is wrong (and holds no secret); any other failure is named by its type only.
_EXPLAINED: tuple[type[Exception], ...] = (ValueError, BridgeError, ConfigError)


def start_problem(exc: Exception) -> str:
    """What an operator reads about a connection that could not start (in the API's state reason and the log)."""
    if isinstance(exc, ValidationError):  # its message would repeat the input values
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
    if isinstance(exc, _EXPLAINED):
        return str(exc)
    return f"{type(exc).__name__} (the bridge's log has the details)"


@dataclass(frozen=True, slots=True)
class CatalogSettings:
    """How the catalog follows the store."""

    sync_interval_secs: float = DEFAULT_SYNC_INTERVAL_SECS


def _references(connection: Connection) -> bool:
    def walk(node: object) -> bool:
        if isinstance(node, dict):
            return set(node) == {"secretsManager"} or any(walk(value) for value in node.values())
        if isinstance(node, list):
            return any(walk(value) for value in node)
        return False

    return walk(revealed_document(connection))


def validate_body(body: Any, stored: StoredConnection | None = None) -> Connection:
    """The connection a POST (``stored`` None) or PUT body describes, after the masked and retained fields.

    Raises UnknownConnectorError for another connector and InvalidConnectionError listing every field problem.
    """
    if not isinstance(body, dict):
        raise InvalidConnectionError([FieldIssue(DOCUMENT_PATH, "must be a JSON object")])
    connector = body.get("connectorId")
    if isinstance(connector, str) and connector != CONNECTOR_ID:
        raise UnknownConnectorError(connector)
    issues: list[FieldIssue] = []
    if stored is not None:
        previous = revealed_document(stored.connection)
        body, issues = fill_masked(retain_certificate(body, previous), previous)
    else:
        body, issues = fill_masked(body, None)
    try:
        connection = parse_connection(body)
    except ConfigError as exc:
        masked_paths = {issue.path for issue in issues}
        issues += [issue for issue in exc.issues if issue.path not in masked_paths]
        raise InvalidConnectionError(issues) from None
    if issues:
        raise InvalidConnectionError(issues)
    return connection


class ConnectionCatalog:
    """Create, replace, delete and read connections; apply each change to the live runtimes."""

    def __init__(
        self,
        store: ConnectionStore,
        runtimes: ConnectionHost,
        accounts: AccountResolver,
        *,
        fetch_secret: SecretFetcher | None = None,
        settings: CatalogSettings | None = None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.store = store
        self.runtimes = runtimes
        self.accounts = accounts
        self.settings = settings or CatalogSettings()
        self._fetch_secret = fetch_secret
        self._new_id = new_id
        # One change at a time in this process, so runtimes see changes in the order the store took them.
        self._lock = asyncio.Lock()
        self._applied: dict[str, int] = {}  # connection id → version running here
        self._problems: dict[str, str] = {}  # connection id → why it could not start here
        self._sync_task: asyncio.Task[None] | None = None

    # --- requests ----------------------------------------------------------------------------------------------
    async def create(self, body: Any) -> StoredConnection:
        connection = validate_body(body)
        live = await self._resolved(connection)
        account = await self.accounts.account_of(connection)
        async with self._lock:
            record = await self.store.create(self._new_id(), connection, account)
            await self._apply(record, live)
        logger.info("connection %s created for %s", record.connection_id, record.account)
        return record

    async def replace(self, connection_id: str, body: Any) -> StoredConnection:
        current = await self.store.get(connection_id)
        connection = validate_body(body, current)
        live = await self._resolved(connection)
        account = await self.accounts.account_of(connection)
        async with self._lock:
            record = await self.store.replace(connection_id, connection, account, current.version)
            await self._apply(record, live)
        logger.info("connection %s replaced (version %d)", connection_id, record.version)
        return record

    async def delete(self, connection_id: str) -> None:
        current = await self.store.get(connection_id)
        async with self._lock:
            await self.store.delete(connection_id, current.version)
            await self._stop(connection_id)
        logger.info("connection %s deleted", connection_id)

    async def get(self, connection_id: str) -> StoredConnection:
        return await self.store.get(connection_id)

    async def list(self) -> list[StoredConnection]:
        return await self.store.list()

    def state_of(self, connection_id: str) -> ConnectionState:
        return self.report_of(connection_id).state

    def report_of(self, connection_id: str) -> StateReport:
        """The live state here and why it is not OPENED; CLOSED when this task does not run the connection."""
        if connection_id not in self._applied:
            problem = self._problems.get(connection_id)
            reason = f"cannot start: {problem}" if problem else "not started on this bridge task yet"
            return StateReport(ConnectionState.CLOSED, reason)
        try:
            return self.runtimes.connection_report(connection_id)
        except (KeyError, UnknownConnectionError):
            return StateReport(ConnectionState.CLOSED, "not running on this bridge task")

    # --- applying to the runtimes ------------------------------------------------------------------------------
    async def _resolved(self, connection: Connection) -> Connection:
        """The connection with Secrets Manager references fetched (and validated) for the runtime."""
        if self._fetch_secret is None or not _references(connection):
            return connection
        fetch = self._fetch_secret
        try:
            return await asyncio.to_thread(resolve_secret_references, connection, fetch)
        except SecretReferenceError as exc:
            raise InvalidConnectionError([FieldIssue("configuration", str(exc))]) from None
        except ConfigError as exc:
            raise InvalidConnectionError(list(exc.issues)) from None

    async def _apply(self, record: StoredConnection, live: Connection) -> None:
        """Start or restart the runtime; a failure is logged and retried by the next sync, the record stays."""
        connection_id = record.connection_id
        try:
            if connection_id in self._applied:
                await self.runtimes.replace_connection(connection_id, live)
            else:
                await self.runtimes.add_connection(connection_id, live)
        except Exception as exc:
            problem = start_problem(exc)
            self._problems[connection_id] = problem
            if isinstance(exc, _EXPLAINED):
                logger.error("connection %s (version %d) cannot start: %s", connection_id, record.version, problem)
            else:
                logger.exception("connection %s (version %d) could not be started", connection_id, record.version)
            return
        self._problems.pop(connection_id, None)
        self._applied[connection_id] = record.version

    async def _stop(self, connection_id: str) -> None:
        self._problems.pop(connection_id, None)
        if self._applied.pop(connection_id, None) is None:
            return
        try:
            await self.runtimes.remove_connection(connection_id)
        except Exception:
            logger.exception("connection %s could not be stopped cleanly", connection_id)

    async def sync(self) -> None:
        """Start, restart or stop runtimes so this process runs exactly the stored connections."""
        records = await self.store.list()
        async with self._lock:
            stored_ids = {record.connection_id for record in records}
            for connection_id in [known for known in self._applied if known not in stored_ids]:
                await self._stop(connection_id)
            for record in records:
                if self._applied.get(record.connection_id) == record.version:
                    continue
                try:
                    live = await self._resolved(record.connection)
                except ConnectionsError as exc:
                    self._problems[record.connection_id] = str(exc)
                    logger.error("connection %s cannot start: %s", record.connection_id, exc)
                    continue
                await self._apply(record, live)

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sync_interval_secs)
            try:
                await self.sync()
            except Exception:  # the loop must outlive one failed round (store briefly unreachable, ...)
                logger.exception("periodic connection sync failed")

    async def start(self) -> None:
        """Run the stored connections now, then follow the store in the background."""
        await self.sync()
        self._sync_task = spawn(self._sync_forever(), "connections-sync")

    async def stop(self) -> None:
        """Stop following the store; the runtimes themselves are drained by the service that owns them."""
        task, self._sync_task = self._sync_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
