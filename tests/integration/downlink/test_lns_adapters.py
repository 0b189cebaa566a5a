"""Each network server's downlink API against a local HTTP server: request shape, retries, rate, reuse."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from urllib.parse import unquote

import httpx
import pytest

from bridge_container.downlink.chirpstack import ChirpStackAdapter
from bridge_container.downlink.correlation import CorrelationIds
from bridge_container.downlink.documents import DownlinkRequest
from bridge_container.downlink.exceptions import LnsRejectedError, LnsUnavailableError
from bridge_container.downlink.limiter import RateLimiter, RateSettings
from bridge_container.downlink.sender import HttpSettings, LnsSender, RetryPolicy, build_http_client
from bridge_container.downlink.thingpark import ThingParkAdapter
from bridge_container.downlink.tts import TtsAdapter
from bridge_domain.lns import ChirpStackLns, ThingParkLns, TtsLns
from devtools.local_lns import Answer, LocalLns, RecordedRequest
from devtools.ports import free_port
from tests.integration.downlink.conftest import WINDOW_SLACK_SECS, max_in_window

pytestmark = pytest.mark.integration

AS_KEY = "00112233445566778899aabbccddeeff"
REQUEST = DownlinkRequest("70B3D57ED0000001", 5, b"\xca\xfe", confirmed=True, correlation_id="order-17")
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_secs=0.01, max_delay_secs=0.02)
SETTINGS = HttpSettings(read_timeout_secs=0.3, retry=FAST_RETRY)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with build_http_client(SETTINGS) as shared:
        yield shared


def sender_for(client: httpx.AsyncClient, rate_per_sec: int = 100) -> LnsSender:
    return LnsSender(client, RateLimiter(RateSettings(rate_per_sec)), FAST_RETRY)


def thingpark(lns: LocalLns) -> ThingParkAdapter:
    return ThingParkAdapter(
        ThingParkLns.model_validate(
            {"asId": "as.test", "asKey": AS_KEY, "downlinkUrl": f"{lns.url}/thingpark/lrc/rest/downlink"}
        )
    )


async def test_thingpark_gets_devEUI_port_payload_and_a_token_that_verifies(
    lns: LocalLns, client: httpx.AsyncClient
) -> None:
    receipt = await sender_for(client).send(thingpark(lns).prepare(REQUEST))
    [request] = lns.requests
    query = request.query
    assert (request.method, request.path) == ("POST", "/thingpark/lrc/rest/downlink")
    assert (query["DevEUI"], query["FPort"], query["Payload"], query["Confirmed"], query["AS_ID"]) == (
        "70B3D57ED0000001",
        "5",
        "cafe",
        "1",
        "as.test",
    )
    # Verify as ThingPark does: the raw query before &Token, percent-decoded, followed by the AS key.
    signed_part, _, token = request.raw_query.partition("&Token=")
    assert token == hashlib.sha256((unquote(signed_part) + AS_KEY).encode()).hexdigest()
    assert "+" in unquote(signed_part)  # the Time's offset was signed unencoded
    assert receipt.reference == query["CorrelationID"]


async def test_chirpstack_enqueues_on_the_device_queue_with_the_api_token(
    lns: LocalLns, client: httpx.AsyncClient
) -> None:
    adapter = ChirpStackAdapter(
        ChirpStackLns.model_validate({"ingressToken": "in", "apiUrl": f"{lns.url}/api", "apiToken": "cs-token"})
    )
    await sender_for(client).send(adapter.prepare(REQUEST))
    [request] = lns.requests
    assert request.path == "/api/devices/70b3d57ed0000001/queue"
    assert request.headers["authorization"] == "Bearer cs-token"
    item = json.loads(request.body)["queueItem"]
    assert (item["devEui"], item["fPort"], item["confirmed"], base64.b64decode(item["data"])) == (
        "70b3d57ed0000001",
        5,
        True,
        b"\xca\xfe",
    )


async def test_chirpstack_queue_item_id_is_the_reference_remembered_with_the_correlation_id(
    lns: LocalLns, client: httpx.AsyncClient
) -> None:
    lns.respond_with(lambda _request: Answer(200, b'{"id": "ac4a6ec5-4e0a-4b25-a1a2-b1e8c6e1e2a4", "fCntDown": 7}'))
    correlation_ids = CorrelationIds()
    adapter = ChirpStackAdapter(
        ChirpStackLns.model_validate({"ingressToken": "in", "apiUrl": f"{lns.url}/api", "apiToken": "cs-token"}),
        correlation_ids=correlation_ids,
    )
    receipt = await sender_for(client).send(adapter.prepare(REQUEST))
    assert receipt.reference == "ac4a6ec5-4e0a-4b25-a1a2-b1e8c6e1e2a4"
    assert correlation_ids.lookup("ac4a6ec5-4e0a-4b25-a1a2-b1e8c6e1e2a4") == "order-17"
    assert correlation_ids.lookup("another-queue-item") is None


async def test_a_chirpstack_answer_without_an_id_leaves_no_reference(lns: LocalLns, client: httpx.AsyncClient) -> None:
    lns.respond_with(lambda _request: Answer(200, b"not json"))
    adapter = ChirpStackAdapter(
        ChirpStackLns.model_validate({"ingressToken": "in", "apiUrl": f"{lns.url}/api", "apiToken": "cs-token"})
    )
    assert (await sender_for(client).send(adapter.prepare(REQUEST))).reference is None


async def test_tts_pushes_on_the_webhook_downlink_queue_with_the_api_key(
    lns: LocalLns, client: httpx.AsyncClient
) -> None:
    adapter = TtsAdapter(
        TtsLns.model_validate(
            {
                "ingressToken": "in",
                "apiUrl": lns.url,
                "applicationId": "app1",
                "webhookId": "wh1",
                "apiKey": "NNSXS.key",
            }
        )
    )
    await sender_for(client).send(adapter.prepare(REQUEST))
    [request] = lns.requests
    assert request.path == "/api/v3/as/applications/app1/webhooks/wh1/devices/eui-70b3d57ed0000001/down/push"
    assert request.headers["authorization"] == "Bearer NNSXS.key"
    [downlink] = json.loads(request.body)["downlinks"]
    assert (downlink["f_port"], base64.b64decode(downlink["frm_payload"]), downlink["confirmed"]) == (
        5,
        b"\xca\xfe",
        True,
    )
    assert downlink["correlation_ids"] == ["aws-iot-bridge:order-17"]


async def test_a_5xx_is_retried_then_reported_unavailable(lns: LocalLns, client: httpx.AsyncClient) -> None:
    lns.respond_with(lambda _request: Answer(500, b'{"error": "db down"}'))
    with pytest.raises(LnsUnavailableError, match="500") as raised:
        await sender_for(client).send(thingpark(lns).prepare(REQUEST))
    assert len(lns.requests) == FAST_RETRY.max_attempts
    assert raised.value.attempts == FAST_RETRY.max_attempts


async def test_a_5xx_followed_by_success_is_delivered(lns: LocalLns, client: httpx.AsyncClient) -> None:
    answers = iter([Answer(503), Answer(200)])
    lns.respond_with(lambda _request: next(answers))
    receipt = await sender_for(client).send(thingpark(lns).prepare(REQUEST))
    assert receipt.attempts == 2
    tokens = [request.query["Token"] for request in lns.requests]
    assert len(tokens) == 2  # each attempt is signed anew with its own Time


@pytest.mark.parametrize("status", [400, 401, 404, 429])
async def test_a_4xx_is_final_and_never_retried(lns: LocalLns, client: httpx.AsyncClient, status: int) -> None:
    lns.respond_with(lambda _request: Answer(status, b'{"message": "unknown device"}'))
    with pytest.raises(LnsRejectedError, match=str(status)) as raised:
        await sender_for(client).send(thingpark(lns).prepare(REQUEST))
    assert len(lns.requests) == 1
    assert "unknown device" in str(raised.value)


async def test_timeouts_are_retried(lns: LocalLns, client: httpx.AsyncClient) -> None:
    lns.respond_with(lambda _request: Answer(200, delay_secs=SETTINGS.read_timeout_secs + 0.2))
    with pytest.raises(LnsUnavailableError, match="timed out"):
        await sender_for(client).send(thingpark(lns).prepare(REQUEST))
    assert len(lns.requests) == FAST_RETRY.max_attempts


async def test_an_unreachable_network_server_is_retried_then_unavailable(client: httpx.AsyncClient) -> None:
    settings = ThingParkLns.model_validate({"asKey": AS_KEY, "downlinkUrl": f"http://127.0.0.1:{free_port()}/downlink"})
    with pytest.raises(LnsUnavailableError, match="connection failed"):
        await sender_for(client).send(ThingParkAdapter(settings).prepare(REQUEST))


async def test_sequential_downlinks_reuse_one_connection(lns: LocalLns, client: httpx.AsyncClient) -> None:
    sender, adapter = sender_for(client), thingpark(lns)
    for _ in range(10):
        await sender.send(adapter.prepare(REQUEST))
    assert len({request.peer_port for request in lns.requests}) == 1


async def test_concurrent_downlinks_stay_within_the_rate_at_the_network_server(
    lns: LocalLns, client: httpx.AsyncClient
) -> None:
    rate_per_sec = 20
    sender, adapter = sender_for(client, rate_per_sec), thingpark(lns)
    await asyncio.gather(*(sender.send(adapter.prepare(REQUEST)) for _ in range(2 * rate_per_sec + 5)))
    requests: list[RecordedRequest] = lns.requests
    assert len(requests) == 2 * rate_per_sec + 5
    assert max_in_window(requests, 1.0 - WINDOW_SLACK_SECS) <= rate_per_sec
