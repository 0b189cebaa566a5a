"""A real HTTP server (uvicorn) serving the Connections API over a fake runtime, STS on moto."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from moto import mock_aws
from starlette.types import ASGIApp

from bridge_container.connections.accounts import StsAccountResolver
from bridge_container.connections.auth import AdminAuth, StaticToken
from bridge_container.connections.catalog import ConnectionCatalog
from bridge_container.connections.router import build_router
from bridge_container.connections.sqlite_store import SqliteConnectionStore
from devtools.pki import CertPair, DevPki
from devtools.ports import LOOPBACK, free_port
from tests.unit.connections.support import FakeRuntimes

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
START_TIMEOUT_SECS = 10.0


class ServedApp:
    """``app`` on uvicorn in a thread, on a free loopback port."""

    def __init__(self, app: ASGIApp) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host=LOOPBACK, port=self.port, log_level="warning", lifespan="off")
        )
        self._thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> ServedApp:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECS
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=START_TIMEOUT_SECS)


@dataclass
class Api:
    """A running Connections API and the pieces behind it."""

    client: httpx.Client  # sends the admin token
    anonymous: httpx.Client
    runtimes: FakeRuntimes
    catalog: ConnectionCatalog
    app: FastAPI


@pytest.fixture(scope="module")
def cert(pki: DevPki) -> CertPair:
    return pki.client("api-bridge")


@pytest.fixture(scope="module")
def other_cert(pki: DevPki) -> CertPair:
    return pki.client("api-other")


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def build_app(state_dir: Path, runtimes: FakeRuntimes) -> tuple[FastAPI, ConnectionCatalog]:
    catalog = ConnectionCatalog(
        SqliteConnectionStore(state_dir), runtimes, StsAccountResolver(lambda: boto3.client("sts"))
    )
    app = FastAPI(title="connections under test")
    app.include_router(build_router(catalog, AdminAuth(StaticToken(ADMIN_TOKEN))))
    return app, catalog


@pytest.fixture
def api(aws: None, tmp_path: Path) -> Iterator[Api]:
    runtimes = FakeRuntimes()
    app, catalog = build_app(tmp_path / "state", runtimes)
    with ServedApp(app) as served:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=served.url, headers=headers) as client, httpx.Client(base_url=served.url) as anon:
            yield Api(client, anon, runtimes, catalog, app)
