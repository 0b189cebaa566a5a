"""Hostile requests against a running bridge: every one is refused with a 4xx and nothing reaches the broker.

The bridge serves one connection with every route configured (ThingPark with an AS key, ChirpStack, TTS, batch);
``mosquitto_sub`` on the broker's plain port watches every topic the connection could publish on. Two genuine
messages (a signed uplink and a signed downlink report) go first, so that their copies can be replayed, and a
genuine uplink last, so that the subscriber has provably seen everything before it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson
import pytest

from bridge_container.service import BridgeService
from bridge_container.settings import ServiceSettings
from bridge_container.states import ConnectionState
from bridge_domain.connection import Connection
from devtools.broker import LocalBroker
from devtools.pki import DevPki
from devtools.ports import free_port
from devtools.simulator import REPORT_SIGNED_FIELDS, UPLINK_SIGNED_FIELDS, thingpark_token
from tests.integration.uplink.conftest import connection_document, wait_until
from tests.integration.uplink.test_bridge_http import RunningBridge
from tests.metrics import sample_value

pytestmark = pytest.mark.integration

AS_KEY = "8f2a9c0d4e6b1a3f5c7e9d0b2a4c6e8f"
OTHER_KEY = "00112233445566778899aabbccddeeff"
CS_TOKEN = "corpus-chirpstack-secret"
TTS_TOKEN = "corpus-tts-secret"
BATCH_TOKEN = "corpus-batch-secret"
DEV_EUI = "70B3D57ED00C0001"
TOPICS = "corpus/#"
JSON_TYPE = "application/json"
NDJSON = "application/x-ndjson"
JSON = {"Content-Type": JSON_TYPE}
TP = "/uplinks/thingpark"
CS = "/uplinks/chirpstack?event=up"
SENT = "DevEUI_downlink_Sent"
REJECTED = "DevEUI_downlink_Rejected"
ARRIVAL_TIMEOUT_SECS = 10.0
TTS_MESSAGE_NOT_AN_OBJECT = b'{"uplink_message": "x", "end_device_ids": {}}'
SAMPLES = Path(__file__).parents[2] / "events" / "lns"
EVENT_SIGNED_FIELDS = ("CustomerID", "DevEUI")


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    body: bytes
    status: int
    headers: Mapping[str, str] = field(default_factory=lambda: JSON)


# --- genuine documents, which the cases then spoil ----------------------------------------------------------------
def uplink(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "Time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "DevEUI": DEV_EUI,
        "FPort": 2,
        "FCntUp": 41,
        "payload_hex": "0a0b0c",
        "DevAddr": "0018ABCD",
        "CustomerID": "100000507",
    }
    document.update(changes)
    return {key: value for key, value in document.items() if value is not ...}


def sent_report(**changes: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "Time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "DevEUI": DEV_EUI,
        "FPort": 2,
        "FCntDn": 9,
        "DeliveryStatus": 1,
        "CorrelationID": "0011223344556677",
        "CustomerID": "100000507",
    }
    report.update(changes)
    return report


def thingpark_query(
    message: Mapping[str, Any],
    signed_fields: Sequence[str],
    *,
    key: str | None = AS_KEY,
    time: datetime | str | None = None,
    token: str | None = None,
) -> str:
    """ThingPark's query: parameters signed unencoded with ``key``, sent percent-encoded; or a given ``token``."""
    moment = datetime.now(UTC) if time is None else time
    parameters = [("LrnDevEui", DEV_EUI), ("LrnFPort", "2"), ("AS_ID", "corpus-as")]
    parameters.append(("Time", moment if isinstance(moment, str) else moment.isoformat(timespec="milliseconds")))
    if token is not None:
        parameters.append(("Token", token))
    elif key is not None:
        parameters.append(("Token", thingpark_token(message, parameters, key, signed_fields)))
    return urlencode(parameters, quote_via=quote)


def signed_uplink(*, time: datetime | str | None = None, key: str = AS_KEY, **changes: Any) -> tuple[str, bytes]:
    inner = uplink(**changes)
    query = thingpark_query(inner, UPLINK_SIGNED_FIELDS, key=key, time=time)
    return f"{TP}?{query}", orjson.dumps({"DevEUI_uplink": inner})


def signed_report(root: str = SENT, *, time: datetime | None = None, **changes: Any) -> tuple[str, bytes]:
    report = sent_report(**changes)
    return f"{TP}?{thingpark_query(report, REPORT_SIGNED_FIELDS, time=time)}", orjson.dumps({root: report})


def report_body(root: str = SENT, **changes: Any) -> bytes:
    return orjson.dumps({root: sent_report(**changes)})


def chirpstack(**changes: Any) -> bytes:
    event: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(),
        "deviceInfo": {"devEui": DEV_EUI.lower(), "applicationId": "c1d5"},
        "devAddr": "0018abcd",
        "fCnt": 12,
        "fPort": 3,
        "data": base64.b64encode(b"\x01\x02").decode(),
    }
    event.update(changes)
    return orjson.dumps(event)


def tts(message: dict[str, Any] | None = None, **changes: Any) -> bytes:
    document: dict[str, Any] = {
        "end_device_ids": {"device_id": "d1", "application_ids": {"application_id": "app"}, "dev_eui": DEV_EUI},
        "received_at": datetime.now(UTC).isoformat(),
        "uplink_message": {"f_port": 4, "f_cnt": 7, "frm_payload": base64.b64encode(b"\xca\xfe").decode()},
    }
    document["uplink_message"].update(message or {})
    document.update(changes)
    return orjson.dumps(document)


def cs_event(name: str, **changes: Any) -> bytes:
    """A ChirpStack event sample for the corpus device, with ``changes`` (None removes a field)."""
    event = json.loads((SAMPLES / f"chirpstack_{name}.json").read_text())
    event["deviceInfo"]["devEui"] = DEV_EUI.lower()
    event.update(changes)
    return orjson.dumps({key: value for key, value in event.items() if value is not None})


def tts_event(name: str, inner: dict[str, Any] | None = None, **changes: Any) -> bytes:
    """A TTS webhook sample for the corpus device; ``inner`` changes the message under its own key."""
    document = json.loads((SAMPLES / f"tts_{name}.json").read_text())
    document["end_device_ids"]["dev_eui"] = DEV_EUI
    key = next(key for key in document if key not in {"end_device_ids", "correlation_ids", "received_at"})
    document[key].update(inner or {})
    document.update(changes)
    return orjson.dumps(document)


def signed_event(name: str, *, signed: bool = True, **changes: Any) -> tuple[str, bytes]:
    """A ThingPark notification or location sample for the corpus device, signed with the AS key."""
    document = json.loads((SAMPLES / f"thingpark_{name}.json").read_text())
    [(root, inner)] = document.items()
    inner.update(DevEUI=DEV_EUI, Time=datetime.now(UTC).isoformat(timespec="milliseconds"), **changes)
    query = thingpark_query(inner, EVENT_SIGNED_FIELDS, key=AS_KEY if signed else None)
    return f"{TP}?{query}", orjson.dumps({root: inner})


def event_cases() -> list[Case]:
    """Hostile event bodies: joins, status, locations, logs and downlink reports that must be refused."""
    cs = {"Content-Type": JSON_TYPE, "Authorization": f"Bearer {CS_TOKEN}"}
    tts_auth = {"Content-Type": JSON_TYPE, "Authorization": TTS_TOKEN}
    status, location = "/uplinks/chirpstack?event=status", "/uplinks/chirpstack?event=location"
    join, log = "/uplinks/chirpstack?event=join", "/uplinks/chirpstack?event=log"
    return [
        Case("ChirpStack status without Authorization", status, cs_event("status"), 401),
        Case("ChirpStack status, margin 99", status, cs_event("status", margin=99), 400, cs),
        Case("ChirpStack status, battery -1 %", status, cs_event("status", batteryLevel=-1), 400, cs),
        Case("ChirpStack status, battery a word", status, cs_event("status", batteryLevel="full"), 400, cs),
        Case("ChirpStack status, external power 'yes'", status, cs_event("status", externalPowerSource="y"), 400, cs),
        Case("ChirpStack location, latitude 91", location, cs_event("location", location={"latitude": 91}), 400, cs),
        Case(
            "ChirpStack location, longitude a word",
            location,
            cs_event("location", location={"latitude": 1, "longitude": "east"}),
            400,
            cs,
        ),
        Case(
            "ChirpStack location, negative accuracy",
            location,
            cs_event("location", location={"latitude": 1, "longitude": 2, "accuracy": -5}),
            400,
            cs,
        ),
        Case("ChirpStack location without location", location, cs_event("location", location=None), 400, cs),
        Case("ChirpStack join, devAddr injection", join, cs_event("join", devAddr="00/+/#"), 400, cs),
        Case("ChirpStack join without deviceInfo", join, cs_event("join", deviceInfo=None), 400, cs),
        Case("ChirpStack join, devEui injection", join, cs_event("join", deviceInfo={"devEui": "01/+/#"}), 400, cs),
        Case("ChirpStack log, level PANIC", log, cs_event("log", level="PANIC"), 400, cs),
        Case("ChirpStack log, context not text", log, cs_event("log", context={"queue_item_id": 5}), 400, cs),
        Case("ChirpStack log, description of 2000 chars", log, cs_event("log", description="x" * 2000), 400, cs),
        Case(
            "ChirpStack txack without queueItemId",
            "/uplinks/chirpstack?event=txack",
            cs_event("txack", queueItemId=None),
            400,
            cs,
        ),
        Case(
            "ChirpStack ack, acknowledged 'yes'",
            "/uplinks/chirpstack?event=ack",
            cs_event("ack", acknowledged="yes"),
            400,
            cs,
        ),
        Case("TTS join_accept without Authorization", "/uplinks/tts", tts_event("join_accept"), 401),
        Case(
            "TTS join_accept, dev_eui injection",
            "/uplinks/tts",
            tts_event("join_accept", end_device_ids={"dev_eui": "70B3/+/#"}),
            400,
            tts_auth,
        ),
        Case(
            "TTS location_solved, latitude a word",
            "/uplinks/tts",
            tts_event("location_solved", {"location": {"latitude": "north", "longitude": 4}}),
            400,
            tts_auth,
        ),
        Case(
            "TTS service_data, data a list",
            "/uplinks/tts",
            tts_event("service_data", {"data": [1, 2]}),
            400,
            tts_auth,
        ),
        Case(
            "TTS location_solved of 200 KiB",
            "/uplinks/tts",
            tts_event("location_solved", {"attributes": {"blob": "a" * 200_000}}),
            413,
            tts_auth,
        ),
        Case(
            "TTS uplink_normalized, payload a string",
            "/uplinks/tts",
            tts_event("uplink_normalized", {"normalized_payload": "hot"}),
            400,
            tts_auth,
        ),
        Case(
            "TTS downlink_ack, correlation_ids not a list",
            "/uplinks/tts",
            tts_event("downlink_ack", {"correlation_ids": "aws-iot-bridge:x"}),
            400,
            tts_auth,
        ),
        Case(
            "TTS downlink_failed, no DevEUI anywhere",
            "/uplinks/tts",
            orjson.dumps(
                {
                    **json.loads((SAMPLES / "tts_downlink_failed.json").read_text()),
                    "end_device_ids": {"device_id": "dev1", "application_ids": {"application_id": "app1"}},
                }
            ),
            400,
            tts_auth,
        ),
        Case(
            "ThingPark status notification without Token", *signed_event("notification_devstatusans", signed=False), 401
        ),
        Case("ThingPark status notification, battery 300", *signed_event("notification_devstatusans", Var1="300"), 400),
        Case("ThingPark status notification, margin 40", *signed_event("notification_devstatusans", Var2="40"), 400),
        Case("ThingPark location, DevLAT 123", *signed_event("location", DevLAT=123), 400),
        Case("ThingPark location, DevLON missing", *signed_event("location", DevLON=None), 400),
    ]


def corpus(replayed_uplink: tuple[str, bytes], replayed_report: tuple[str, bytes]) -> list[Case]:
    stale = datetime.now(UTC) - timedelta(minutes=10)
    cs = {"Content-Type": JSON_TYPE, "Authorization": f"Bearer {CS_TOKEN}"}
    tts_auth = {"Content-Type": JSON_TYPE, "Authorization": TTS_TOKEN}
    batch_auth = {"Content-Type": NDJSON, "Authorization": f"Bearer {BATCH_TOKEN}"}
    genuine_line = orjson.dumps({"DevEUI_uplink": uplink()})
    unsigned = orjson.dumps({"DevEUI_uplink": uplink()})
    path, body = signed_uplink()
    other_device = path.replace(f"LrnDevEui={DEV_EUI}", "LrnDevEui=70B3D57ED00C0002")
    bad_fport_line = orjson.dumps({"DevEUI_uplink": uplink(FPort=0)})
    return [
        # ThingPark uplinks: authentication
        Case("uplink without Token", f"{TP}?{thingpark_query(uplink(), (), key=None)}", unsigned, 401),
        Case("uplink, no query at all", TP, unsigned, 401),
        Case("uplink, random Token", path.rsplit("=", 1)[0] + "=" + "ab" * 32, body, 401),
        Case("uplink signed with another key", *signed_uplink(key=OTHER_KEY), 401),
        Case("uplink, body changed after signing", path, body.replace(b"0a0b0c", b"0a0b0d"), 401),
        Case("uplink, Token cut short", path[:-1], body, 401),
        Case("uplink, Token not hex", path[:-2] + "zz", body, 401),
        Case("uplink, Time 10 minutes old", *signed_uplink(time=stale), 401),
        Case("uplink, Time an hour ahead", *signed_uplink(time=datetime.now(UTC) + timedelta(hours=1)), 401),
        Case("uplink, Time without a zone", *signed_uplink(time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")), 401),
        Case("uplink, Time not a time", *signed_uplink(time="soon"), 401),
        Case("uplink replayed", *replayed_uplink, 403),
        Case("LrnDevEui names another device", other_device, body, 401),  # LrnDevEui is signed
        # ThingPark uplinks: fields (each signed, so that the field is what is refused)
        Case("payload_hex odd", *signed_uplink(payload_hex="0a0b0"), 400),
        Case("payload_hex not hex", *signed_uplink(payload_hex="zz"), 400),
        Case("payload_hex with a space", *signed_uplink(payload_hex="0a 0b"), 400),
        Case("payload_hex a number", *signed_uplink(payload_hex=1234), 400),
        Case("FPort 0", *signed_uplink(FPort=0), 400),
        Case("FPort 224", *signed_uplink(FPort=224), 400),
        Case("FPort 255", *signed_uplink(FPort=255), 400),
        Case("FPort 256", *signed_uplink(FPort=256), 400),
        Case("FPort -1", *signed_uplink(FPort=-1), 400),
        Case("FPort text", *signed_uplink(FPort="two"), 400),
        Case("FPort true", *signed_uplink(FPort=True), 400),
        Case("FPort 2.5", *signed_uplink(FPort=2.5), 400),
        Case("payload without FPort", *signed_uplink(FPort=...), 400),
        Case("FCntUp -1", *signed_uplink(FCntUp=-1), 400),
        Case("FCntUp 2**32", *signed_uplink(FCntUp=2**32), 400),
        Case("FCntUp a superscript digit", *signed_uplink(FCntUp="²"), 400),
        Case("FCntUp 5000 digits", *signed_uplink(FCntUp="9" * 5000), 400),
        Case("DevEUI 15 digits", *signed_uplink(DevEUI=DEV_EUI[:-1]), 400),
        Case("DevEUI topic injection", *signed_uplink(DevEUI="70B3D57ED000/+/#"), 400),
        Case("DevEUI with NUL", *signed_uplink(DevEUI="70B3D57ED00C000\x00"), 400),
        Case("DevEUI missing", *signed_uplink(DevEUI=...), 400),
        Case("DevAddr topic injection", *signed_uplink(DevAddr="00/+"), 400),
        Case("body Time without zone", *signed_uplink(Time="2026-05-01T12:00:00.000"), 400),
        # ThingPark: the request itself
        Case("not JSON", path, b"{", 400),
        Case("empty body", path, b"", 400),
        Case("a JSON array", path, b"[]", 400),
        Case("no ThingPark root", path, b'{"foo": 1}', 400),
        Case("DevEUI_uplink a string", path, b'{"DevEUI_uplink": "x"}', 400),
        Case("text/plain", path, body, 415, {"Content-Type": "text/plain"}),
        Case("no Content-Type", path, body, 415, {}),
        Case("a form", path, body, 415, {"Content-Type": "application/x-www-form-urlencoded"}),
        Case("300 KiB body", path, b" " * (300 * 1024), 413),
        Case("document over 128 KiB", *signed_uplink(CustomerData={"x": "a" * 131_072}), 413),
        # ThingPark downlink reports
        Case("Sent without Token", f"{TP}?LrnDevEui={DEV_EUI}", report_body(), 401),
        Case("Rejected without Token", TP, report_body(REJECTED), 401),
        Case("Sent, random Token", f"{TP}?Time=x&Token={'cd' * 32}", report_body(), 401),
        Case("Sent, FCntDn changed after signing", signed_report()[0], report_body(FCntDn=10), 401),
        Case("Sent, Time 10 minutes old", *signed_report(time=stale), 401),
        Case("Rejected with an invalid DevEUI", *signed_report(REJECTED, DevEUI="70B3/+"), 400),
        Case("Sent replayed", *replayed_report, 403),
        # ChirpStack
        Case("ChirpStack without Authorization", CS, chirpstack(), 401),
        Case("ChirpStack, wrong token", CS, chirpstack(), 401, {**cs, "Authorization": "Bearer nope"}),
        Case("ChirpStack, token prefix", CS, chirpstack(), 401, {**cs, "Authorization": CS_TOKEN[:-1]}),
        Case("ChirpStack data not base64", CS, chirpstack(data="***"), 400, cs),
        Case("ChirpStack data unpadded", CS, chirpstack(data="AQI"), 400, cs),
        Case("ChirpStack fPort 0", CS, chirpstack(fPort=0), 400, cs),
        Case("ChirpStack fPort 224", CS, chirpstack(fPort=224), 400, cs),
        Case("ChirpStack fCnt -5", CS, chirpstack(fCnt=-5), 400, cs),
        Case("ChirpStack fCnt 1e3 text", CS, chirpstack(fCnt="1e3"), 400, cs),
        Case("ChirpStack devEui short", CS, chirpstack(deviceInfo={"devEui": "0102"}), 400, cs),
        Case("ChirpStack without deviceInfo", CS, chirpstack(deviceInfo=None), 400, cs),
        Case("ChirpStack time without zone", CS, chirpstack(time="2026-05-01T12:00:00"), 400, cs),
        Case("ChirpStack protobuf", CS, chirpstack(), 415, {**cs, "Content-Type": "application/octet-stream"}),
        # The Things Stack
        Case("TTS without Authorization", "/uplinks/tts", tts(), 401),
        Case("TTS, wrong secret", "/uplinks/tts", tts(), 401, {**tts_auth, "Authorization": "Bearer " + CS_TOKEN}),
        Case("TTS frm_payload not base64", "/uplinks/tts", tts({"frm_payload": "!!"}), 400, tts_auth),
        Case("TTS f_port 225", "/uplinks/tts", tts({"f_port": 225}), 400, tts_auth),
        Case("TTS f_cnt 2**32", "/uplinks/tts", tts({"f_cnt": 2**32}), 400, tts_auth),
        Case("TTS dev_eui injection", "/uplinks/tts", tts(end_device_ids={"dev_eui": "#"}), 400, tts_auth),
        Case("TTS received_at garbage", "/uplinks/tts", tts(received_at="now"), 400, tts_auth),
        Case(
            "TTS uplink_message a string",
            "/uplinks/tts",
            b'{"uplink_message": "x", "end_device_ids": {}}',
            400,
            tts_auth,
        ),
        Case("TTS without end_device_ids", "/uplinks/tts", tts(end_device_ids=None), 400, tts_auth),
        # Batches
        Case("batch without Authorization", "/uplinks/batch", genuine_line, 401, {"Content-Type": NDJSON}),
        Case("batch, wrong token", "/uplinks/batch", genuine_line, 401, {**batch_auth, "Authorization": "Bearer x"}),
        Case("batch, one invalid item", "/uplinks/batch", genuine_line + b"\n" + bad_fport_line, 400, batch_auth),
        Case("batch, a broken line", "/uplinks/batch", genuine_line + b"\n{\n", 400, batch_auth),
        Case("batch, empty", "/uplinks/batch", b"\n\n", 400, batch_auth),
        Case("batch, array of numbers", "/uplinks/batch", b"[1, 2]", 400, {**batch_auth, "Content-Type": JSON_TYPE}),
        Case("batch, a report as an item", "/uplinks/batch", report_body(), 400, batch_auth),
        Case("batch, 10,001 items", "/uplinks/batch", b"{}\n" * 10_001, 413, batch_auth),
        Case("batch, text/plain", "/uplinks/batch", genuine_line, 415, {**batch_auth, "Content-Type": "text/plain"}),
        # Routes
        Case("an LNS that does not exist", "/uplinks/lorawan", genuine_line, 404),
        Case("a connection that does not exist", "/connections/nope/uplinks/thingpark", genuine_line, 404),
        # Events beyond uplinks and downlink reports
        *event_cases(),
    ]


# --- the subscriber --------------------------------------------------------------------------------------------
class PlainSubscriber:
    """``mosquitto_sub -t corpus/# -v`` on the broker's plain loopback port, collecting ``topic payload`` lines."""

    def __init__(self, broker: LocalBroker) -> None:
        self.broker = broker
        self.lines: list[str] = []
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        mosquitto_sub = shutil.which("mosquitto_sub")
        assert mosquitto_sub is not None, "mosquitto_sub is not installed"
        self._process = await asyncio.create_subprocess_exec(
            mosquitto_sub, "-h", self.broker.host, "-p", str(self.broker.ports.plain), "-t", TOPICS, "-v",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        async for line in self._process.stdout:
            self.lines.append(line.decode().rstrip("\n"))

    def topics(self) -> list[str]:
        return [line.split(" ", 1)[0] for line in self.lines]

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def publish_marker(broker: LocalBroker) -> None:
    process = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", broker.host, "-p", str(broker.ports.plain), "-t", "corpus/ready", "-m", "ready"
    )
    await process.wait()


@pytest.fixture
async def bridge(request: pytest.FixtureRequest) -> AsyncIterator[RunningBridge]:
    settings = ServiceSettings(task_id="corpus", port=free_port(), emf_interval_secs=0, drain_deadline_secs=1)
    running = RunningBridge(BridgeService(settings))
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def subscriber(broker: LocalBroker) -> AsyncIterator[PlainSubscriber]:
    watching = PlainSubscriber(broker)
    await watching.start()
    # Subscribed once a message published after the start arrives.
    for _ in range(100):
        await publish_marker(broker)
        if "corpus/ready" in watching.topics():
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("mosquitto_sub did not subscribe")
    yield watching
    await watching.stop()


async def test_every_hostile_request_is_refused_with_a_4xx_and_nothing_is_published(
    bridge: RunningBridge, broker: LocalBroker, pki: DevPki, subscriber: PlainSubscriber
) -> None:
    document = connection_document(
        broker,
        pki.client("bridge"),
        lns=[
            {"kind": "thingpark", "asKey": AS_KEY, "asId": "corpus-as"},
            {"kind": "chirpstack", "ingressToken": CS_TOKEN, "apiUrl": "https://chirpstack.example.com/api"},
            {"kind": "tts", "ingressToken": TTS_TOKEN, "apiUrl": "https://eu1.example.com", "applicationId": "app"},
        ],
        batchIngressToken=BATCH_TOKEN,
        uplinkTopicPattern="corpus/things/{DevEUI}/uplink",
        downlinkTopicPattern="corpus/things/{DevEUI}/downlink",
    )
    await bridge.service.add_connection("default", Connection.model_validate(document))
    await wait_until(lambda: bridge.service.connection_state("default") is ConnectionState.OPENED)
    uplink_topic = f"corpus/things/{DEV_EUI}/uplink"
    sent_topic = f"corpus/things/{DEV_EUI}/downlink/sent"

    genuine_uplink, genuine_report = signed_uplink(FCntUp=1), signed_report()
    for path, body in (genuine_uplink, genuine_report):
        assert (await bridge.http.post(path, content=body)).status_code == 202
    await wait_until(lambda: {uplink_topic, sent_topic} <= set(subscriber.topics()), ARRIVAL_TIMEOUT_SECS)

    cases = corpus(genuine_uplink, genuine_report)
    async with httpx.AsyncClient(base_url=bridge.url, timeout=10.0) as bare:  # no default headers
        answers = {case.name: await bare.post(case.path, content=case.body, headers=case.headers) for case in cases}

    last = signed_uplink(FCntUp=2)
    assert (await bridge.http.post(*last[:1], content=last[1])).status_code == 202
    await wait_until(lambda: subscriber.topics().count(uplink_topic) >= 2, ARRIVAL_TIMEOUT_SECS)
    await asyncio.sleep(0.3)  # anything published out of order would arrive within this

    assert len(cases) >= 60
    assert len(event_cases()) >= 15
    assert {name: answer.status_code for name, answer in answers.items()} == {case.name: case.status for case in cases}
    for name, answer in answers.items():
        assert answer.headers["content-type"] == "application/json", name
        assert answer.json()["error"], name
        for secret in (AS_KEY, CS_TOKEN, TTS_TOKEN, BATCH_TOKEN):
            assert secret not in answer.text, name
    bridge_topics = [topic for topic in subscriber.topics() if topic != "corpus/ready"]
    assert sorted(bridge_topics) == sorted([uplink_topic, sent_topic, uplink_topic])
    registry = bridge.service.registry
    assert sample_value(registry, "bridge_uplinks_accepted_total") == 2
    assert sample_value(registry, "bridge_uplinks_written_total") == 2
