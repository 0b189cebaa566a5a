"""The whole uplink path over HTTP: a real uvicorn server, the pool, mosquitto with client certificates."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import boto3
import httpx
import orjson
import pytest

from bridge_container.service import BridgeService
from bridge_container.settings import ServiceSettings
from bridge_container.states import ConnectionState
from bridge_domain.connection import Connection
from devtools.aws import LocalAws
from devtools.broker import LocalBroker
from devtools.pki import DevPki
from devtools.ports import free_port
from tests.integration.uplink.conftest import connection_document, wait_until
from tests.metrics import sample_value

pytestmark = pytest.mark.integration

BATCH_TOKEN = "batch-secret"
CS_TOKEN = "chirpstack-secret"
TTS_TOKEN = "tts-secret"
JSON = {"Content-Type": "application/json"}
LNS = [
    {"kind": "thingpark"},
    {"kind": "chirpstack", "ingressToken": CS_TOKEN, "apiUrl": "https://chirpstack.example.com/api"},
    {"kind": "tts", "ingressToken": TTS_TOKEN, "apiUrl": "https://eu1.example.com", "applicationId": "app"},
]


class RunningBridge:
    """A BridgeService serving on a free port inside the test's event loop."""

    def __init__(self, service: BridgeService) -> None:
        self.service = service
        self.url = f"http://127.0.0.1:{service.settings.port}"
        self.http = httpx.AsyncClient(base_url=self.url, timeout=5.0, headers=JSON)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.service.run())
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                await self.http.get("/healthz")
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the bridge did not start serving")

    async def stop(self) -> None:
        self.service.request_shutdown()
        if self._task is not None:
            await asyncio.wait_for(self._task, 30)
        await self.http.aclose()


@pytest.fixture
async def bridge(request: pytest.FixtureRequest) -> AsyncIterator[RunningBridge]:
    settings = ServiceSettings(
        task_id=request.node.name[:20].replace("_", ""), port=free_port(), emf_interval_secs=0, drain_deadline_secs=1
    )
    running = RunningBridge(BridgeService(settings))
    await running.start()
    yield running
    await running.stop()


async def add(bridge: RunningBridge, document: dict[str, Any], connection_id: str = "default") -> None:
    await bridge.service.add_connection(connection_id, Connection.model_validate(document))


def thingpark(dev_eui: str, fcnt: int) -> bytes:
    return orjson.dumps({"DevEUI_uplink": {"DevEUI": dev_eui, "FPort": 1, "FCntUp": fcnt, "payload_hex": "00ff"}})


async def test_every_lns_format_arrives_on_the_right_topic_with_the_right_document(
    bridge: RunningBridge, broker: LocalBroker, pki: DevPki, subscribe: Callable[..., Any]
) -> None:
    subscriber = await subscribe(broker, "http/things/+/uplink")
    document = connection_document(
        broker,
        pki.client("bridge"),
        lns=LNS,
        batchIngressToken=BATCH_TOKEN,
        uplinkTopicPattern="http/things/{DevEUI}/uplink",
    )
    await add(bridge, document)
    await wait_until(lambda: bridge.service.connection_state("default") is ConnectionState.OPENED)
    chirpstack = {
        "deviceInfo": {"devEui": "70b3d57ed0000002", "applicationId": "a1"},
        "fCnt": 5,
        "fPort": 2,
        "devAddr": "01020304",
        "data": base64.b64encode(b"\x10\x20").decode(),
        "object": {"t": 20},
    }
    tts = {
        "end_device_ids": {"dev_eui": "70B3D57ED0000003", "application_ids": {"application_id": "app"}},
        "uplink_message": {"f_port": 9, "f_cnt": 1, "frm_payload": base64.b64encode(b"\x01").decode()},
    }
    answers = [
        await bridge.http.post("/uplinks/thingpark", content=thingpark("70B3D57ED0000001", 1)),
        await bridge.http.post(
            "/connections/default/uplinks/chirpstack?event=up",
            content=orjson.dumps(chirpstack),
            headers={"Authorization": f"Bearer {CS_TOKEN}"},
        ),
        await bridge.http.post("/uplinks/tts", content=orjson.dumps(tts), headers={"Authorization": TTS_TOKEN}),
        await bridge.http.post(
            "/uplinks/batch",
            content=thingpark("70B3D57ED0000004", 1) + b"\n" + thingpark("70B3D57ED0000005", 1),
            headers={"Authorization": f"Bearer {BATCH_TOKEN}", "Content-Type": "application/x-ndjson"},
        ),
    ]
    assert [answer.status_code for answer in answers] == [202, 202, 202, 202]
    received = {message.topic: orjson.loads(message.payload) for message in await subscriber.wait_for(5)}
    assert received["http/things/70B3D57ED0000001/uplink"] == orjson.loads(thingpark("70B3D57ED0000001", 1))
    assert received["http/things/70B3D57ED0000002/uplink"]["DevEUI_uplink"]["payload_hex"] == "1020"
    assert received["http/things/70B3D57ED0000002/uplink"]["DevEUI_uplink"]["payload"] == {"t": 20}
    assert received["http/things/70B3D57ED0000003/uplink"]["DevEUI_uplink"]["FPort"] == 9
    assert set(received) == {f"http/things/70B3D57ED000000{n}/uplink" for n in range(1, 6)}


async def test_bad_input_is_4xx_never_5xx(bridge: RunningBridge, broker: LocalBroker, pki: DevPki) -> None:
    await add(bridge, connection_document(broker, pki.client("bridge")))
    cases = [
        (b"{", 400),
        (thingpark("70B3D57ED000/+/#", 1), 400),
        (orjson.dumps({"DevEUI_uplink": {"DevEUI": "70B3D57ED0000001", "x": "a" * 140_000}}), 413),
        (b"x" * (256 * 1024 + 1), 413),
    ]
    statuses = [(await bridge.http.post("/uplinks/thingpark", content=body)).status_code for body, _ in cases]
    assert statuses == [status for _, status in cases]
    unknown = await bridge.http.post("/connections/nope/uplinks/thingpark", content=thingpark("70B3D57ED0000001", 1))
    assert unknown.status_code == 404


async def test_full_buffer_answers_429_with_retry_after(
    bridge: RunningBridge, broker: LocalBroker, pki: DevPki
) -> None:
    closed = {"host": broker.host, "port": free_port(), "caCertificate": pki.ca.cert_pem}
    await add(bridge, connection_document(broker, pki.client("bridge"), broker=closed, bufferSize=2, poolSize=1))
    statuses = [
        (await bridge.http.post("/uplinks/thingpark", content=thingpark("70B3D57ED0000001", n))) for n in range(3)
    ]
    assert [answer.status_code for answer in statuses] == [202, 202, 429]
    assert statuses[2].headers["retry-after"] == "1"
    health = await bridge.http.get("/healthz")
    assert health.status_code == 503
    assert health.json()["connections"]["default"]["buffered"] == 2


async def test_healthz_and_metrics_report_the_pool(
    bridge: RunningBridge, broker: LocalBroker, pki: DevPki, subscribe: Callable[..., Any]
) -> None:
    subscriber = await subscribe(broker, "tpx/things/+/uplink")
    await add(bridge, connection_document(broker, pki.client("bridge")))
    await wait_until(lambda: bridge.service.connection_state("default") is ConnectionState.OPENED)
    await bridge.http.post("/uplinks/thingpark", content=thingpark("70B3D57ED00000AA", 1))
    await subscriber.wait_for(1)
    await wait_until(lambda: sample_value(bridge.service.registry, "bridge_uplinks_published_total") == 1)
    health = await bridge.http.get("/healthz")
    metrics = (await bridge.http.get("/metrics")).text
    assert health.status_code == 200
    assert health.json()["status"] == "ready"
    assert 'bridge_uplinks_accepted_total{connection="default",lns="thingpark"} 1.0' in metrics
    assert 'bridge_uplinks_published_total{connection="default"} 1.0' in metrics
    assert 'bridge_pool_state{bridge_pool_state="OPENED",connection="default"} 1.0' in metrics
    assert "bridge_uplink_publish_latency_seconds_bucket" in metrics


async def test_fast_path_and_fastapi_routes_answer_alike(
    bridge: RunningBridge, broker: LocalBroker, pki: DevPki
) -> None:
    await add(bridge, connection_document(broker, pki.client("bridge"), batchIngressToken=BATCH_TOKEN))
    routed = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=bridge.service.fastapi), base_url="http://bridge", headers=JSON
    )
    requests: list[tuple[str, bytes, dict[str, str]]] = [
        ("/uplinks/thingpark", b"{", JSON),
        ("/uplinks/thingpark", thingpark("70B3D57ED0000001", 1), JSON),
        ("/uplinks/batch", thingpark("70B3D57ED0000001", 1), JSON),
        ("/connections/other/uplinks/tts", b"{}", JSON),
        ("/uplinks/thingpark", thingpark("70B3D57ED0000001", 1), {"Content-Type": "text/plain"}),
        ("/uplinks/thingpark", orjson.dumps({"DevEUI_uplink": {"DevEUI": "70B3D57ED0000001", "FPort": 0}}), JSON),
    ]
    async with routed:
        for path, body, headers in requests:
            fast = await bridge.http.post(path, content=body, headers=headers)
            slow = await routed.post(path, content=body, headers=headers)
            assert (fast.status_code, fast.content) == (slow.status_code, slow.content)
    schema = (await bridge.http.get("/openapi.json")).json()
    assert {"/uplinks/{lns}", "/connections/{connection_id}/uplinks/{lns}", "/healthz", "/metrics"} <= set(
        schema["paths"]
    )


async def test_replacing_a_connection_keeps_its_buffered_uplinks(
    bridge: RunningBridge, broker: LocalBroker, pki: DevPki, subscribe: Callable[..., Any]
) -> None:
    subscriber = await subscribe(broker, "tpx/things/+/uplink")
    closed = {"host": broker.host, "port": free_port(), "caCertificate": pki.ca.cert_pem}
    await add(bridge, connection_document(broker, pki.client("bridge"), broker=closed, poolSize=1))
    for n in range(3):
        answer = await bridge.http.post("/uplinks/thingpark", content=thingpark(f"70B3D57ED000010{n}", n))
        assert answer.status_code == 202
    document = connection_document(broker, pki.client("bridge"), poolSize=1)
    await bridge.service.replace_connection("default", Connection.model_validate(document))
    received = await subscriber.wait_for(3)
    assert sorted(message.topic for message in received) == [f"tpx/things/70B3D57ED000010{n}/uplink" for n in range(3)]


async def test_first_uplink_of_an_unknown_dev_eui_registers_its_thing(
    bridge: RunningBridge,
    broker: LocalBroker,
    pki: DevPki,
    local_aws: LocalAws,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", local_aws.endpoint_url)
    iot = boto3.client("iot", region_name="eu-central-1")
    iot.create_thing_type(thingTypeName="test-sensor")
    await add(bridge, connection_document(broker, pki.client("bridge"), registerThings=True))
    for fcnt in range(3):
        answer = await bridge.http.post("/uplinks/thingpark", content=thingpark("70b3d57ed00000f1", fcnt))
        assert answer.status_code == 202
    registry = bridge.service.registry
    await wait_until(lambda: sample_value(registry, "bridge_registrations_total", {"outcome": "created"}) == 1)
    await bridge.http.post("/uplinks/thingpark", content=thingpark("70B3D57ED00000F1", 9))
    # A new device after it: once that one is registered, the registrar has seen the known one too.
    await bridge.http.post("/uplinks/thingpark", content=thingpark("70B3D57ED00000F2", 0))
    await wait_until(lambda: sample_value(registry, "bridge_registrations_total", {"outcome": "created"}) == 2)
    thing = iot.describe_thing(thingName="70B3D57ED00000F1")
    assert thing["thingTypeName"] == "test-sensor"
    assert thing["attributes"]["createdBy"] == "aws-iot-bridge"
    assert sample_value(registry, "bridge_registrations_total") == 2  # known DevEUIs cost no further call
