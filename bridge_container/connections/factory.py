"""Assemble the Connections API from the environment: the store, the admin token, STS, and the router.

Environment (explicit settings > environment > defaults):

* ``BRIDGE_CONNECTIONS_TABLE``: DynamoDB table (key ``connectionId``); when set, connections live there and their
  secret values in Secrets Manager under ``BRIDGE_CONNECTIONS_SECRET_PREFIX`` (default
  ``aws-iot-bridge/connections/``). When unset, the embedded SQLite store in ``BRIDGE_STATE_DIR`` (default
  ``.state``) is used.
* ``BRIDGE_ADMIN_TOKEN_SECRET`` / ``BRIDGE_ADMIN_TOKEN``: the admin token (see :mod:`.auth`).
* ``BRIDGE_CONNECTIONS_SYNC_SECS``: how often each task re-reads the store (default 30).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from fastapi import APIRouter

from bridge_container.connections.accounts import StsAccountResolver
from bridge_container.connections.auth import AdminAuth, token_source_from_env
from bridge_container.connections.catalog import DEFAULT_SYNC_INTERVAL_SECS, CatalogSettings, ConnectionCatalog
from bridge_container.connections.dynamodb_store import (
    DEFAULT_SECRET_PREFIX,
    DynamoDbConnectionStore,
    DynamoDbStoreSettings,
)
from bridge_container.connections.host import ConnectionHost
from bridge_container.connections.router import build_router
from bridge_container.connections.sqlite_store import SqliteConnectionStore
from bridge_container.connections.store import ConnectionStore
from bridge_domain.secrets import secrets_manager_fetcher

TABLE_ENV = "BRIDGE_CONNECTIONS_TABLE"
SECRET_PREFIX_ENV = "BRIDGE_CONNECTIONS_SECRET_PREFIX"  # noqa: S105 - a variable name
STATE_DIR_ENV = "BRIDGE_STATE_DIR"
SYNC_SECS_ENV = "BRIDGE_CONNECTIONS_SYNC_SECS"
DEFAULT_STATE_DIR = ".state"


@dataclass(frozen=True, slots=True)
class ConnectionsSettings:
    """Where connections are stored and how often each task follows the store."""

    table_name: str | None = None
    secret_name_prefix: str = DEFAULT_SECRET_PREFIX
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    sync_interval_secs: float = DEFAULT_SYNC_INTERVAL_SECS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConnectionsSettings:
        env = os.environ if environ is None else environ
        return cls(
            table_name=env.get(TABLE_ENV) or None,
            secret_name_prefix=env.get(SECRET_PREFIX_ENV) or DEFAULT_SECRET_PREFIX,
            state_dir=Path(env.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR),
            sync_interval_secs=float(env.get(SYNC_SECS_ENV) or DEFAULT_SYNC_INTERVAL_SECS),
        )


def _client_factory(service: str) -> Callable[[], Any]:
    """A boto3 client made on first use (never at import), honouring AWS_ENDPOINT_URL for local mode."""
    return functools.cache(lambda: boto3.client(service))


def open_store(settings: ConnectionsSettings, secretsmanager: Callable[[], Any]) -> ConnectionStore:
    if settings.table_name:
        store_settings = DynamoDbStoreSettings(settings.table_name, settings.secret_name_prefix)
        return DynamoDbConnectionStore(store_settings, boto3.client("dynamodb"), secretsmanager())
    return SqliteConnectionStore(settings.state_dir)


@dataclass(frozen=True, slots=True)
class ConnectionsApi:
    """What the bridge service holds: the catalog to start and stop, and the router to include."""

    catalog: ConnectionCatalog
    router: APIRouter

    async def start(self) -> None:
        """Start every stored connection, then follow the store."""
        await self.catalog.start()

    async def close(self) -> None:
        await self.catalog.stop()
        await self.catalog.store.close()


def build_connections_api(
    runtimes: ConnectionHost,
    settings: ConnectionsSettings | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConnectionsApi:
    env = os.environ if environ is None else environ
    settings = settings or ConnectionsSettings.from_env(env)
    secretsmanager = _client_factory("secretsmanager")
    catalog = ConnectionCatalog(
        open_store(settings, secretsmanager),
        runtimes,
        StsAccountResolver(_client_factory("sts")),
        fetch_secret=lambda reference: secrets_manager_fetcher(secretsmanager())(reference),
        settings=CatalogSettings(sync_interval_secs=settings.sync_interval_secs),
    )
    auth = AdminAuth(token_source_from_env(env, secretsmanager))
    return ConnectionsApi(catalog=catalog, router=build_router(catalog, auth))
