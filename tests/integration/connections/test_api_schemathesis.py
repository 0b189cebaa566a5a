"""Requests generated from the committed OpenAPI document against the real bridge: no 5xx, answers as documented."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from moto import mock_aws
from pydantic import SecretStr
from schemathesis import GenerationMode, checks
from schemathesis.core.result import Ok

from bridge_container.connections.factory import build_connections_api
from bridge_container.connections.openapi import DOCUMENT_PATH
from bridge_container.service import BridgeService
from bridge_container.settings import ConnectionsSettings, ServiceSettings
from devtools.broker import LocalBroker
from devtools.pki import DevPki
from devtools.ports import free_port, wait_for_port
from tests.integration.connections.conftest import ADMIN_TOKEN
from tests.unit.connections.support import seed_body

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).resolve().parents[3]
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CONNECTIONS_PREFIX = "/connections"
# What the HTTP server (uvicorn's httptools parser) answers to a request it cannot parse, before any route runs.
NOT_HTTP = "Invalid HTTP request received."


class ThreadedBridge:
    """The real BridgeService with the Connections API, in a thread of its own (schemathesis calls are blocking)."""

    def __init__(self, state_dir: Path) -> None:
        settings = ServiceSettings(task_id="schemathesis", port=free_port(), emf_interval_secs=0, drain_deadline_secs=1)
        stored = ConnectionsSettings(state_dir=state_dir, admin_token=SecretStr(ADMIN_TOKEN))
        self.service = BridgeService(
            settings,
            connections_api=lambda runtimes: build_connections_api(runtimes, stored),
        )
        self.url = f"http://127.0.0.1:{settings.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self.service.run(),), daemon=True)

    def __enter__(self) -> ThreadedBridge:
        self._thread.start()
        wait_for_port(self.service.settings.port)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self.service.request_shutdown)
        self._thread.join(timeout=30)
        self._loop.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, broker: LocalBroker, pki: DevPki) -> Iterator[ThreadedBridge]:
    with mock_aws(), ThreadedBridge(tmp_path_factory.mktemp("schemathesis") / "state") as running:
        yield running


@pytest.fixture(scope="module")
def existing_id(served: ThreadedBridge, broker: LocalBroker, pki: DevPki) -> str:
    """A stored, running connection, so generated requests also reach an existing one."""
    body = seed_body(pki.client("schemathesis-bridge"))
    body["configuration"].update(
        registerThings=False,
        broker={"host": broker.host, "port": broker.ports.tls, "caCertificate": broker.pki.ca.cert_pem},
    )
    response = httpx.post(f"{served.url}/connections", json=body, headers=AUTH, timeout=10)
    assert response.status_code == 201, response.text
    connection_id: str = response.json()["connectionId"]
    return connection_id


@pytest.fixture(scope="module")
def operations() -> list[Any]:
    """The Connections API's operations in the committed document."""
    document = json.loads((REPOSITORY / DOCUMENT_PATH).read_text(encoding="utf-8"))
    schema = schemathesis.openapi.from_dict(document)
    found = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    return [operation for operation in found if operation.path.startswith(CONNECTIONS_PREFIX)
            and "/uplinks/" not in operation.path]  # fmt: skip


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("target", ["generated id", "existing id"])
def test_generated_requests_get_documented_answers(
    operations: list[Any], served: ThreadedBridge, existing_id: str, mode: GenerationMode, target: str
) -> None:
    statuses: list[int] = []
    for operation in operations:
        fixed = {"connection_id": existing_id} if target == "existing id" and "{" in operation.path else None

        @given(case=operation.as_strategy(mode, path_parameters=fixed))
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: Any) -> None:
            response = case.call(base_url=served.url, headers=AUTH)
            statuses.append(response.status_code)
            if response.status_code == 400 and response.text == NOT_HTTP:
                return  # a negative case that is not valid HTTP (e.g. a header name with ';'): the API never saw it
            case.validate_response(response, checks=CHECKS)

        call()
    assert len(operations) == 5
    assert statuses, "no request was generated"
    assert all(status < 500 for status in statuses)


def test_generated_requests_without_the_token_are_401(operations: list[Any], served: ThreadedBridge) -> None:
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: Any) -> None:
            response = case.call(base_url=served.url)
            assert response.status_code == 401
            case.validate_response(response, checks=CHECKS)

        call()
