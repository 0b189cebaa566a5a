"""Generated requests from the OpenAPI document against the served Connections API: no 5xx, answers as documented."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from moto import mock_aws
from schemathesis import GenerationMode, checks

from bridge_container.local.pki import DevPki
from tests.integration.connections.conftest import ADMIN_TOKEN, ServedApp, build_app
from tests.unit.connections.support import FakeRuntimes, seed_body

pytestmark = pytest.mark.integration

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    with mock_aws():
        app, _ = build_app(tmp_path_factory.mktemp("schemathesis") / "state", FakeRuntimes())
        with ServedApp(app) as running:
            yield running


@pytest.fixture(scope="module")
def existing_id(served: ServedApp, pki: DevPki) -> str:
    """A stored connection, so generated PUT/GET/DELETE requests also reach an existing one."""
    body = seed_body(pki.client("schemathesis-bridge"))
    response = httpx.post(f"{served.url}/connections", json=body, headers=AUTH)
    assert response.status_code == 201
    connection_id: str = response.json()["connectionId"]
    return connection_id


@pytest.fixture(scope="module")
def api_schema(served: ServedApp) -> Any:
    document = httpx.get(f"{served.url}/openapi.json").json()
    return schemathesis.openapi.from_dict(document)


def operations(api_schema: Any) -> list[Any]:
    return [result.ok() for result in api_schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("target", ["generated id", "existing id"])
def test_generated_requests_get_documented_answers(
    api_schema: Any, served: ServedApp, existing_id: str, mode: GenerationMode, target: str
) -> None:
    statuses: list[int] = []
    for operation in operations(api_schema):
        fixed = {"connection_id": existing_id} if target == "existing id" and "{" in operation.path else None

        @given(case=operation.as_strategy(mode, path_parameters=fixed))
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: Any) -> None:
            response = case.call_and_validate(base_url=served.url, headers=AUTH, checks=CHECKS)
            statuses.append(response.status_code)

        call()
    assert statuses, "no request was generated"
    assert all(status < 500 for status in statuses)


def test_generated_requests_without_the_token_are_401(api_schema: Any, served: ServedApp) -> None:
    for operation in operations(api_schema):

        @given(case=operation.as_strategy())
        @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: Any) -> None:
            response = case.call(base_url=served.url)
            assert response.status_code == 401
            case.validate_response(response, checks=CHECKS)

        call()
