"""Assemble the Connections API from its settings: the store, the admin token, STS, and the router.

The settings (:class:`~bridge_container.settings.ConnectionsSettings`) come from the environment: the DynamoDB
table (key ``connectionId``) or the embedded SQLite store's directory, the prefix of the connections' secrets, the
sync interval and the admin token (see :mod:`.auth`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from fastapi import APIRouter

from bridge_container.connections.accounts import StsAccountResolver
from bridge_container.connections.auth import AdminAuth, token_source
from bridge_container.connections.catalog import CatalogSettings, ConnectionCatalog
from bridge_container.connections.dynamodb_store import DynamoDbConnectionStore, DynamoDbStoreSettings
from bridge_container.connections.host import ConnectionHost
from bridge_container.connections.router import build_router
from bridge_container.connections.sqlite_store import SqliteConnectionStore
from bridge_container.connections.store import ConnectionStore
from bridge_container.settings import ConnectionsSettings
from bridge_domain.secrets import secrets_manager_fetcher


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
    auth: AdminAuth | None = None  # the admin check, shared with the console's login

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
    """The API over ``runtimes``; without ``settings``, they are read from ``environ`` (``os.environ``)."""
    if settings is None:
        settings = ConnectionsSettings.from_env(environ)
    secretsmanager = _client_factory("secretsmanager")
    catalog = ConnectionCatalog(
        open_store(settings, secretsmanager),
        runtimes,
        StsAccountResolver(_client_factory("sts")),
        fetch_secret=lambda reference: secrets_manager_fetcher(secretsmanager())(reference),
        settings=CatalogSettings(sync_interval_secs=settings.sync_interval_secs),
    )
    auth = AdminAuth(token_source(settings, secretsmanager))
    return ConnectionsApi(catalog=catalog, router=build_router(catalog, auth), auth=auth)
