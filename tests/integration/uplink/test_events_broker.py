"""Events beyond uplinks and downlink lifecycle reports through a running bridge, the stand-in and mosquitto.

Real LNS samples (``tests/events/lns``) are posted to the bridge's HTTP ingress; an independent subscriber on the
broker's observer port sees what the bridge published.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge_container.service import BridgeService
from bridge_container.settings import ServiceSettings
from bridge_container.states import ConnectionState
from bridge_domain.connection import Connection
from devtools.broker import LocalBroker
from devtools.local_lns import Answer, LocalLns
from devtools.pki import DevPki
from devtools.ports import free_port
from tests.integration.uplink.conftest import Subscriber, connection_document, wait_until
from tests.integration.uplink.test_bridge_http import RunningBridge
from tests.metrics import sample_value

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).parents[2] / "events" / "lns"
CS_TOKEN = "events-chirpstack-secret"
TTS_TOKEN = "events-tts-secret"
CS_EUI = "0101010101010101"
TTS_EUI = "0004A30B001C0530"
TP_EUI = "000000000F1D8693"
QUEUE_ITEM_ID = "ac4a6ec5-4e0a-4b25-a1a2-b1e8c6e1e2a4"
ARRIVAL_TIMEOUT_SECS = 10.0


def sample(name: str) -> bytes:
    return (SAMPLES / f"{name}.json").read_bytes()


@pytest.fixture
def lns() -> Iterator[LocalLns]:
    with LocalLns(lambda _request: Answer(200, orjson.dumps({"id": QUEUE_ITEM_ID, "fCntDown": 7}))) as server:
        yield server


@pytest.fixture
async def bridge(request: pytest.FixtureRequest) -> AsyncIterator[RunningBridge]:
    settings = ServiceSettings(
        task_id=request.node.name[:20].replace("_", ""), port=free_port(), emf_interval_secs=0, drain_deadline_secs=1
    )
    running = RunningBridge(BridgeService(settings))
    await running.start()
    yield running
    await running.stop()


async def connect(bridge: RunningBridge, broker: LocalBroker, pki: DevPki, lns: LocalLns, **overrides: Any) -> None:
    document = connection_document(
        broker,
        pki.client("events-bridge"),
        lns=[
            {"kind": "thingpark"},
            {"kind": "chirpstack", "ingressToken": CS_TOKEN, "apiUrl": f"{lns.url}/api", "apiToken": "cs-api"},
            {"kind": "tts", "ingressToken": TTS_TOKEN, "apiUrl": "https://eu1.example.com", "applicationId": "app1"},
        ],
        uplinkTopicPattern="ev/things/{DevEUI}/uplink",
        downlinkTopicPattern="ev/things/{DevEUI}/downlink",
        **overrides,
    )
    await bridge.service.add_connection("default", Connection.model_validate(document))
    await wait_until(lambda: bridge.service.connection_state("default") is ConnectionState.OPENED)


async def post(bridge: RunningBridge, lns: str, body: bytes, event: str | None = None) -> int:
    if lns == "chirpstack":
        headers = {"Authorization": f"Bearer {CS_TOKEN}"}
        answer = await bridge.http.post(f"/uplinks/chirpstack?event={event}", content=body, headers=headers)
    elif lns == "tts":
        answer = await bridge.http.post("/uplinks/tts", content=body, headers={"Authorization": TTS_TOKEN})
    else:
        answer = await bridge.http.post("/uplinks/thingpark", content=body)
    return answer.status_code


async def published(subscriber: Subscriber, condition: Callable[[dict[str, list[dict[str, Any]]]], bool]) -> Any:
    def by_topic() -> dict[str, list[dict[str, Any]]]:
        seen: dict[str, list[dict[str, Any]]] = {}
        for message in subscriber.snapshot():
            seen.setdefault(message.topic, []).append(orjson.loads(message.payload))
        return seen

    await wait_until(lambda: condition(by_topic()), ARRIVAL_TIMEOUT_SECS)
    return by_topic()


EVENTS = [
    ("chirpstack", "chirpstack_join", "join", f"ev/things/{CS_EUI}/join"),
    ("chirpstack", "chirpstack_status", "status", f"ev/things/{CS_EUI}/status"),
    ("chirpstack", "chirpstack_location", "location", f"ev/things/{CS_EUI}/location"),
    ("chirpstack", "chirpstack_log", "log", f"ev/things/{CS_EUI}/log"),
    ("tts", "tts_join_accept", None, f"ev/things/{TTS_EUI}/join"),
    ("tts", "tts_location_solved", None, f"ev/things/{TTS_EUI}/location"),
    ("tts", "tts_service_data", None, f"ev/things/{TTS_EUI}/service"),
    ("tts", "tts_uplink_normalized", None, f"ev/things/{TTS_EUI}/normalized"),
    ("thingpark", "thingpark_notification_join", None, f"ev/things/{TP_EUI}/join"),
    ("thingpark", "thingpark_notification_devstatusans", None, f"ev/things/{TP_EUI}/status"),
    ("thingpark", "thingpark_location", None, f"ev/things/{TP_EUI}/location"),
]
EVERY_EVENT = {"log": True, "service": True, "normalized": True}


async def test_each_event_kind_arrives_on_its_topic_with_its_document(
    bridge: RunningBridge,
    broker: LocalBroker,
    pki: DevPki,
    lns: LocalLns,
    subscribe: Callable[[LocalBroker, str], Any],
) -> None:
    subscriber = await subscribe(broker, "ev/#")
    await connect(bridge, broker, pki, lns, events=EVERY_EVENT)

    for lns_kind, name, event, _ in EVENTS:
        assert await post(bridge, lns_kind, sample(name), event) == 202, name

    topics = {topic for *_, topic in EVENTS}
    seen = await published(subscriber, lambda seen: topics <= set(seen))
    assert set(seen) == topics
    for lns_kind, name, _, topic in EVENTS:
        [document] = seen[topic]
        assert (document["lns"], document["event"], document["source"]) == (
            lns_kind,
            topic.rsplit("/", 1)[1],
            json.loads(sample(name)),
        ), name
    assert seen[f"ev/things/{CS_EUI}/status"][0]["battery"] == 75.5
    # Each event carries the user properties rules route on: its device, network server and kind, and a message id.
    for message in subscriber.messages:
        kind = message.topic.rsplit("/", 1)[1]
        document = json.loads(message.payload)
        assert message.properties["EventType"] == kind, message.topic
        assert message.properties["DevEUI"] == document["DevEUI"]
        assert message.properties["LnsKind"] == document["lns"]
        assert message.properties["MessageId"]
    assert seen[f"ev/things/{TP_EUI}/location"][0]["latitude"] == 43.58081
    registry = bridge.service.registry
    assert sample_value(registry, "bridge_events_accepted_total") == len(EVENTS)


async def test_an_event_switched_off_is_not_published_and_is_counted_as_ignored(
    bridge: RunningBridge,
    broker: LocalBroker,
    pki: DevPki,
    lns: LocalLns,
    subscribe: Callable[[LocalBroker, str], Any],
) -> None:
    subscriber = await subscribe(broker, "ev/#")
    await connect(bridge, broker, pki, lns, events={"status": False, "location": False})

    assert await post(bridge, "chirpstack", sample("chirpstack_status"), "status") == 202
    assert await post(bridge, "tts", sample("tts_location_solved")) == 202
    assert await post(bridge, "chirpstack", sample("chirpstack_log"), "log") == 202  # off by default
    assert await post(bridge, "chirpstack", sample("chirpstack_join"), "join") == 202  # still on: comes last
    seen = await published(subscriber, lambda seen: f"ev/things/{CS_EUI}/join" in seen)
    await asyncio.sleep(0.3)  # anything published out of order would arrive within this

    assert [message.topic for message in subscriber.snapshot()] == [f"ev/things/{CS_EUI}/join"]
    assert seen[f"ev/things/{CS_EUI}/join"][0]["devAddr"] == "00189440"
    registry = bridge.service.registry
    for lns_kind, event in (("chirpstack", "status"), ("tts", "location"), ("chirpstack", "log")):
        assert sample_value(registry, "bridge_ingress_ignored_total", {"lns": lns_kind, "event": event}) == 1


async def test_downlink_lifecycle_reports_arrive_on_the_feedback_topics_with_the_callers_correlation_id(
    bridge: RunningBridge,
    broker: LocalBroker,
    pki: DevPki,
    lns: LocalLns,
    subscribe: Callable[[LocalBroker, str], Any],
) -> None:
    subscriber = await subscribe(broker, "ev/#")
    await connect(bridge, broker, pki, lns)
    cs_feedback = f"ev/things/{CS_EUI}/downlink"
    tts_feedback = f"ev/things/{TTS_EUI}/downlink"

    # The application sends a ChirpStack downlink; ChirpStack's answer names its queue item.
    process = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", broker.host, "-p", str(broker.ports.plain), "-t", cs_feedback,
        "-m", orjson.dumps({"payload_hex": "cafe", "correlationId": "cs-order-1", "lns": "chirpstack"}).decode(),
    )  # fmt: skip
    await process.wait()
    await published(subscriber, lambda seen: f"{cs_feedback}/queued" in seen)

    for name, event in (("chirpstack_txack", "txack"), ("chirpstack_ack", "ack"), ("chirpstack_log_expired", "log")):
        assert await post(bridge, "chirpstack", sample(name), event) == 202, name
    for kind in ("queued", "sent", "ack", "nack", "failed"):
        assert await post(bridge, "tts", sample(f"tts_downlink_{kind}")) == 202, kind

    expected = {
        f"{cs_feedback}/sent",
        f"{cs_feedback}/acknowledged",
        f"{cs_feedback}/expired",
        f"{tts_feedback}/queued",
        f"{tts_feedback}/sent",
        f"{tts_feedback}/acknowledged",
        f"{tts_feedback}/nacked",
        f"{tts_feedback}/failed",
    }
    seen = await published(subscriber, lambda seen: expected <= set(seen))
    for topic in expected:
        [document] = seen[topic]
        caller = "cs-order-1" if topic.startswith(cs_feedback) else "order-17"
        assert (document["status"], document["correlationId"]) == (topic.rsplit("/", 1)[1], caller), topic
    assert seen[f"{cs_feedback}/sent"][0]["lnsReference"] == QUEUE_ITEM_ID
    assert seen[f"{tts_feedback}/failed"][0]["reason"] == "lns_reported_failure"
