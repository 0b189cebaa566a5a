"""The ingress routes' own refusals, before any connection sees the request: media type (415) and size (413)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from fastapi import FastAPI

from bridge_container.ingress.http import FastIngress, ingress_router
from bridge_container.ingress.pipeline import ACCEPTED_ONE, MAX_BATCH_BODY_BYTES, MAX_BODY_BYTES, IngressResult
from bridge_domain.quotas import MAX_PAYLOAD_BYTES


class CountingHandler:
    """Accepts every request that reaches it."""

    def __init__(self) -> None:
        self.calls = 0

    async def ingest(
        self, connection_id: str | None, lns: str, body: bytes, *, query: bytes, authorization: bytes | None
    ) -> IngressResult:
        self.calls += 1
        return IngressResult(202, ACCEPTED_ONE)


@pytest.fixture(params=["fast", "fastapi"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[tuple[httpx.AsyncClient, CountingHandler]]:
    handler = CountingHandler()
    app = FastAPI()
    app.include_router(ingress_router(handler))
    asgi = FastIngress(handler, app) if request.param == "fast" else app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://bridge") as http:
        yield http, handler


def test_the_body_bounds_derive_from_the_payload_quota() -> None:
    assert MAX_BODY_BYTES == 2 * MAX_PAYLOAD_BYTES == 256 * 1024
    assert MAX_BATCH_BODY_BYTES == 128 * MAX_PAYLOAD_BYTES == 16 * 1024 * 1024


@pytest.mark.parametrize(
    ("path", "content_type", "status"),
    [
        ("/uplinks/thingpark", "application/json", 202),
        ("/uplinks/thingpark", "Application/JSON; charset=utf-8", 202),
        ("/uplinks/tts", None, 415),
        ("/uplinks/chirpstack", "text/plain", 415),
        ("/uplinks/chirpstack", "application/octet-stream", 415),  # ChirpStack's protobuf marshaler
        ("/uplinks/thingpark", "application/x-www-form-urlencoded", 415),
        ("/uplinks/thingpark", "application/x-ndjson", 415),
        ("/uplinks/batch", "application/x-ndjson", 202),
        ("/connections/c1/uplinks/batch", "application/json", 202),
        ("/connections/c1/uplinks/batch", "multipart/form-data; boundary=x", 415),
    ],
)
async def test_only_json_is_taken(
    client: tuple[httpx.AsyncClient, CountingHandler], path: str, content_type: str | None, status: int
) -> None:
    http, handler = client
    headers = {"Content-Type": content_type} if content_type is not None else {}
    answer = await http.post(path, content=b"{}", headers=headers)
    assert answer.status_code == status
    if status == 415:
        assert answer.json()["error"] == "unsupported_media_type"
        assert answer.json()["field"] == "Content-Type"
        assert handler.calls == 0


@pytest.mark.parametrize(
    ("path", "limit"), [("/uplinks/thingpark", MAX_BODY_BYTES), ("/uplinks/batch", MAX_BATCH_BODY_BYTES)]
)
async def test_a_body_over_the_bound_is_413_and_never_handled(
    client: tuple[httpx.AsyncClient, CountingHandler], path: str, limit: int
) -> None:
    http, handler = client
    at_limit = await http.post(path, content=b" " * limit, headers={"Content-Type": "application/json"})
    over = await http.post(path, content=b" " * (limit + 1), headers={"Content-Type": "application/json"})
    assert at_limit.status_code == 202
    assert (over.status_code, orjson.loads(over.content)["error"]) == (413, "too_large")
    assert handler.calls == 1
