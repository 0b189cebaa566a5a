"""The committed OpenAPI document is the one the bridge serves."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from bridge_container.connections.factory import build_connections_api
from bridge_container.connections.openapi import DOCUMENT_PATH
from bridge_container.service import BridgeService
from bridge_container.settings import ServiceSettings
from devtools.ports import free_port
from tests.integration.connections.conftest import ServedApp

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).resolve().parents[3]


def test_the_served_document_is_the_committed_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_STATE_DIR", str(tmp_path))
    # composed as python -m bridge_container composes it
    service = BridgeService(
        ServiceSettings(task_id="openapi-test", port=free_port()), connections_api=build_connections_api
    )
    with ServedApp(service.app) as served:
        served_document = httpx.get(f"{served.url}/openapi.json").json()
        assert httpx.get(f"{served.url}/docs").status_code == 200
    committed = json.loads((REPOSITORY / DOCUMENT_PATH).read_text(encoding="utf-8"))
    assert served_document == committed, "openapi/bridge.json is out of date: run `make openapi`"
    assert {"/connections", "/connections/{connection_id}", "/uplinks/{lns}", "/healthz"} <= set(committed["paths"])
    assert committed["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
