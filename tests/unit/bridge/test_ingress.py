"""The ingress pipeline: each LNS format to the right topic and document, and every refusal with its status."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from bridge_container.exceptions import PoolClosedError
from bridge_container.ingress.pipeline import IngressResult, UplinkIngress
from bridge_container.metrics import UplinkMetrics, new_registry
from bridge_container.mqtt.port import UserProperties
from bridge_container.registration import NullRegistrar
from bridge_domain.connection import ConnectionConfiguration
from tests.metrics import sample_value

DEV_EUI = "70B3D57ED0000001"
AS_KEY = "0123456789abcdef0123456789abcdef"
NOW = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
CHIRPSTACK_TOKEN = "cs-token"
TTS_TOKEN = "tts-secret"
BATCH_TOKEN = "batch-token"


@dataclass
class Sink:
    """Stands in for the pool."""

    capacity: int = 100
    items: list[tuple[str, bytes]] = field(default_factory=list)
    properties: list[UserProperties] = field(default_factory=list)  # of each item, in order
    waiters: list[Any] = field(default_factory=list)  # deliveryAck published: the futures the requests wait on
    closed: bool = False

    @property
    def free(self) -> int:
        return self.capacity - len(self.items)

    @property
    def depth(self) -> int:
        return len(self.items)

    def submit(self, topic: str, payload: bytes, properties: UserProperties = (), waiter: Any = None) -> bool:
        if self.closed:
            raise PoolClosedError("stopped")
        if self.free < 1:
            return False
        self.items.append((topic, payload))
        self.properties.append(properties)
        if waiter is not None:
            self.waiters.append(waiter)
        return True

    def submit_many(self, items: list[tuple[str, bytes, UserProperties]], count: int, waiters: Any = None) -> bool:
        if self.free < count:
            return False
        self.items.extend((topic, payload) for topic, payload, _ in items)
        self.properties.extend(properties for _, _, properties in items)
        return True


@dataclass
class Recorder:
    observed: list[str] = field(default_factory=list)
    reports: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def observe(self, dev_eui: str) -> None:
        self.observed.append(dev_eui)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def report(self, kind: str, body: dict[str, Any]) -> bool:
        self.reports.append((kind, body))
        return True


def configuration(**overrides: Any) -> ConnectionConfiguration:
    document: dict[str, Any] = {
        "deviceType": "sensor",
        "region": "eu-central-1",
        "protocol": "WSS",
        "accountPrefix": "a1b2c3d4e5f6-ats",
        "lns": [
            {"kind": "thingpark"},
            {"kind": "chirpstack", "ingressToken": CHIRPSTACK_TOKEN, "apiUrl": "https://cs.example.com/api"},
            {"kind": "tts", "ingressToken": TTS_TOKEN, "apiUrl": "https://eu1.example.com", "applicationId": "app"},
        ],
        "batchIngressToken": BATCH_TOKEN,
    }
    document.update(overrides)
    return ConnectionConfiguration.model_validate(document)


def build(
    config: ConnectionConfiguration | None = None, sink: Sink | None = None
) -> tuple[UplinkIngress, Sink, Recorder, Any]:
    registry = new_registry()
    sink = sink or Sink()
    recorder = Recorder()
    ingress = UplinkIngress(
        "default",
        config or configuration(),
        sink,
        UplinkMetrics(registry),
        recorder,
        recorder.report,
        now=lambda: NOW,
    )
    return ingress, sink, recorder, registry


def thingpark_body(dev_eui: str = DEV_EUI, **fields: Any) -> bytes:
    uplink = {
        "Time": "2026-05-01T12:00:00.000+00:00",
        "DevEUI": dev_eui,
        "FPort": 2,
        "FCntUp": 7,
        "payload_hex": "0102",
    }
    uplink.update(fields)
    return orjson.dumps({"DevEUI_uplink": uplink})


def chirpstack_up(dev_eui: str = DEV_EUI, **fields: Any) -> dict[str, Any]:
    event = {
        "deduplicationId": "3ac7e3c4",
        "time": "2026-05-01T12:00:00+00:00",
        "deviceInfo": {"applicationId": "c1d5", "devEui": dev_eui.lower(), "deviceName": "sensor-1"},
        "devAddr": "00189440",
        "fCnt": 10,
        "fPort": 3,
        "data": base64.b64encode(b"\x01\x02\x03").decode(),
        "object": {"temperature": 21.5},
        "rxInfo": [{"rssi": -57, "snr": 9.2}],
    }
    event.update(fields)
    return event


def tts_uplink(dev_eui: str = DEV_EUI) -> dict[str, Any]:
    return {
        "end_device_ids": {"device_id": "dev1", "application_ids": {"application_id": "app"}, "dev_eui": dev_eui},
        "received_at": "2026-05-01T12:00:00Z",
        "uplink_message": {
            "f_port": 4,
            "f_cnt": 42,
            "frm_payload": base64.b64encode(b"\xca\xfe").decode(),
            "decoded_payload": {"humidity": 40},
            "rx_metadata": [{"rssi": -80, "snr": 5.5}],
        },
    }


def body_of(result: IngressResult) -> Any:
    return orjson.loads(result.body)


# --- ThingPark -------------------------------------------------------------------------------------------------
async def test_thingpark_uplink_is_published_as_received() -> None:
    ingress, sink, recorder, _ = build()
    body = thingpark_body(dev_eui=DEV_EUI.lower())
    result = await ingress.handle("thingpark", body)
    assert result.status == 202
    assert sink.items == [(f"tpx/things/{DEV_EUI}/uplink", body)]
    assert recorder.observed == [DEV_EUI]


async def test_flat_document_drops_the_root() -> None:
    ingress, sink, _, _ = build(configuration(uplinkDocument="flat"))
    await ingress.handle("thingpark", thingpark_body())
    assert orjson.loads(sink.items[0][1])["FCntUp"] == 7
    assert "DevEUI_uplink" not in orjson.loads(sink.items[0][1])


async def test_decoded_document_is_only_the_decoded_payload() -> None:
    ingress, sink, _, _ = build(configuration(uplinkDocument="decoded"))
    assert (await ingress.handle("thingpark", thingpark_body(payload={"t": 1}))).status == 202
    missing = await ingress.handle("thingpark", thingpark_body())
    assert sink.items == [(f"tpx/things/{DEV_EUI}/uplink", b'{"t":1}')]
    assert (missing.status, body_of(missing)["error"]) == (400, "no_decoded_payload")


@pytest.mark.parametrize("dev_eui", ["70B3D57ED000/+/#", "70B3D57ED00000+1", "#", "", "70B3D57ED00000011"])
async def test_topic_injection_through_the_dev_eui_is_refused(dev_eui: str) -> None:
    ingress, sink, _, registry = build()
    result = await ingress.handle("thingpark", thingpark_body(dev_eui=dev_eui))
    assert (result.status, body_of(result)["error"]) == (400, "invalid_deveui")
    assert sink.items == []
    assert sample_value(registry, "bridge_uplinks_rejected_total", {"reason": "invalid_deveui"}) == 1


async def test_topic_injection_through_another_placeholder_is_refused() -> None:
    ingress, sink, _, _ = build(configuration(uplinkTopicPattern="lora/{ApplicationId}/{DevEUI}"))
    auth = b"Bearer " + CHIRPSTACK_TOKEN.encode()
    injected = chirpstack_up(deviceInfo={"devEui": DEV_EUI, "applicationId": "a/+"})
    result = await ingress.handle("chirpstack", orjson.dumps(injected), query=b"event=up", authorization=auth)
    assert (result.status, body_of(result)["error"]) == (400, "topic")
    plain = chirpstack_up(deviceInfo={"devEui": DEV_EUI, "applicationId": "c1d5"})
    accepted = await ingress.handle("chirpstack", orjson.dumps(plain), query=b"event=up", authorization=auth)
    assert accepted.status == 202
    assert sink.items[0][0] == f"lora/c1d5/{DEV_EUI}"


async def test_a_dev_addr_that_is_not_8_hex_digits_is_refused_before_the_topic() -> None:
    ingress, sink, _, _ = build(configuration(uplinkTopicPattern="lora/{DevAddr}/{DevEUI}"))
    result = await ingress.handle("thingpark", thingpark_body(DevAddr="00/+"))
    assert (result.status, body_of(result)["field"]) == (400, "DevEUI_uplink.DevAddr")
    assert (await ingress.handle("thingpark", thingpark_body(DevAddr="0018ABCD"))).status == 202
    assert sink.items[0][0] == f"lora/0018ABCD/{DEV_EUI}"


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"something": 1}', b'{"DevEUI_uplink": 5}'])
async def test_malformed_bodies_are_400(body: bytes) -> None:
    ingress, _, _, _ = build()
    result = await ingress.handle("thingpark", body)
    assert (result.status, body_of(result)["error"]) == (400, "malformed")


async def test_documents_over_128_kb_are_413() -> None:
    ingress, sink, _, _ = build()
    result = await ingress.handle("thingpark", thingpark_body(CustomerData={"x": "a" * 131_072}))
    assert (result.status, body_of(result)["error"]) == (413, "too_large")
    assert sink.items == []


async def test_lrn_dev_eui_must_match_the_document() -> None:
    ingress, _, _, _ = build()
    result = await ingress.handle("thingpark", thingpark_body(), query=b"LrnDevEui=70B3D57ED0000002&LrnFPort=2")
    assert (result.status, body_of(result)["error"]) == (400, "invalid_deveui")


def signed_query(body_fields: dict[str, Any], time_text: str, as_key: str = AS_KEY) -> bytes:
    """ThingPark's Token, computed here from its definition: SHA-256 over body values + query + AS key."""
    query = f"LrnDevEui={DEV_EUI}&LrnFPort=2&LrnInfos=UPHTTP_LAB_LORA&AS_ID=app.example&Time={quote(time_text)}"
    values = "".join(
        str(body_fields.get(key, "")) for key in ("CustomerID", "DevEUI", "FPort", "FCntUp", "payload_hex")
    )
    token = hashlib.sha256(f"{values}{query}{as_key}".encode()).hexdigest()
    return f"{query}&Token={token}".encode()


async def test_thingpark_token_signed_with_the_as_key_is_accepted_and_a_tampered_one_refused() -> None:
    config = configuration(lns=[{"kind": "thingpark", "asKey": AS_KEY}])
    ingress, sink, _, _ = build(config)
    fields = {"CustomerID": "100000507", "DevEUI": DEV_EUI, "FPort": 2, "FCntUp": 7, "payload_hex": "0102"}
    query = signed_query(fields, "2026-05-01T12:00:10.000+00:00")
    accepted = await ingress.handle("thingpark", orjson.dumps({"DevEUI_uplink": fields}), query=query)
    tampered_body = orjson.dumps({"DevEUI_uplink": {**fields, "payload_hex": "ffff"}})
    tampered = await ingress.handle("thingpark", tampered_body, query=query)
    wrong_key = await ingress.handle(
        "thingpark",
        orjson.dumps({"DevEUI_uplink": fields}),
        query=signed_query(fields, "2026-05-01T12:00:10Z", "0" * 32),
    )
    assert accepted.status == 202
    assert (tampered.status, body_of(tampered)["error"]) == (401, "token_mismatch")
    assert wrong_key.status == 401
    assert len(sink.items) == 1


async def test_thingpark_time_outside_the_drift_is_refused() -> None:
    config = configuration(lns=[{"kind": "thingpark", "asKey": AS_KEY, "maxTimeDriftSecs": 60}])
    ingress, _, _, _ = build(config)
    fields = {"CustomerID": "1", "DevEUI": DEV_EUI, "FPort": 2, "FCntUp": 8, "payload_hex": "00"}
    result = await ingress.handle(
        "thingpark", orjson.dumps({"DevEUI_uplink": fields}), query=signed_query(fields, "2026-05-01T11:55:00+00:00")
    )
    assert (result.status, body_of(result)["error"]) == (401, "time_drift")


async def test_thingpark_token_is_required_when_an_as_key_is_configured() -> None:
    ingress, _, _, _ = build(configuration(lns=[{"kind": "thingpark", "asKey": AS_KEY}]))
    assert (await ingress.handle("thingpark", thingpark_body())).status == 401


async def test_thingpark_downlink_reports_go_to_the_downlink_part() -> None:
    ingress, sink, recorder, _ = build()
    report = {"DevEUI_downlink_Sent": {"DevEUI": DEV_EUI, "CorrelationID": "c1"}}
    result = await ingress.handle("thingpark", orjson.dumps(report))
    assert result.status == 202
    assert recorder.reports == [("DevEUI_downlink_Sent", report)]
    assert sink.items == []


# --- ChirpStack and TTS ----------------------------------------------------------------------------------------
async def test_chirpstack_up_event_is_normalised_to_thingpark_form() -> None:
    ingress, sink, _, _ = build()
    result = await ingress.handle(
        "chirpstack",
        orjson.dumps(chirpstack_up()),
        query=b"event=up",
        authorization=b"Bearer " + CHIRPSTACK_TOKEN.encode(),
    )
    assert result.status == 202
    topic, document = sink.items[0]
    assert topic == f"tpx/things/{DEV_EUI}/uplink"
    assert orjson.loads(document) == {
        "DevEUI_uplink": {
            "DevEUI": DEV_EUI,
            "Time": "2026-05-01T12:00:00+00:00",
            "DevAddr": "00189440",
            "FPort": 3,
            "FCntUp": 10,
            "payload_hex": "010203",
            "LrrRSSI": -57.0,
            "LrrSNR": 9.2,
            "payload": {"temperature": 21.5},
        }
    }


async def test_chirpstack_events_the_bridge_does_not_carry_are_acknowledged_not_published() -> None:
    ingress, sink, _, registry = build()
    result = await ingress.handle(
        "chirpstack", b'{"deviceInfo": {}}', query=b"event=integration", authorization=CHIRPSTACK_TOKEN.encode()
    )
    assert (result.status, sink.items) == (202, [])
    assert sample_value(registry, "bridge_ingress_ignored_total", {"lns": "chirpstack", "event": "integration"}) == 1


async def test_tts_uplink_message_is_normalised() -> None:
    ingress, sink, _, _ = build(
        configuration(uplinkDocument="flat", uplinkTopicPattern="tts/{ApplicationId}/{DevEUI}/{FPort}")
    )
    result = await ingress.handle("tts", orjson.dumps(tts_uplink()), authorization=TTS_TOKEN.encode())
    assert result.status == 202
    topic, document = sink.items[0]
    assert topic == f"tts/app/{DEV_EUI}/4"
    assert orjson.loads(document)["payload_hex"] == "cafe"
    assert orjson.loads(document)["payload"] == {"humidity": 40}


async def test_tts_messages_the_bridge_does_not_carry_are_acknowledged() -> None:
    ingress, sink, _, registry = build()
    result = await ingress.handle("tts", b'{"downlink_queue_invalidated": {}}', authorization=TTS_TOKEN.encode())
    assert (result.status, sink.items) == (202, [])
    labels = {"lns": "tts", "event": "downlink_queue_invalidated"}
    assert sample_value(registry, "bridge_ingress_ignored_total", labels) == 1


@pytest.mark.parametrize(
    ("lns", "authorization"),
    [
        ("chirpstack", None),
        ("chirpstack", b"Bearer wrong"),
        ("tts", b"cs-token"),
        ("batch", None),
        ("batch", b"Bearer x"),
    ],
)
async def test_header_secrets_are_checked(lns: str, authorization: bytes | None) -> None:
    ingress, sink, _, _ = build()
    body = orjson.dumps(tts_uplink() if lns == "tts" else chirpstack_up())
    result = await ingress.handle(lns, body, query=b"event=up", authorization=authorization)
    assert (result.status, body_of(result)["error"]) == (401, "unauthorized")
    assert sink.items == []


async def test_a_kind_the_connection_does_not_configure_is_refused() -> None:
    ingress, _, _, _ = build(configuration(lns=[{"kind": "thingpark"}], batchIngressToken=None))
    for lns in ("chirpstack", "tts", "batch"):
        result = await ingress.handle(lns, b"{}", authorization=b"Bearer x")
        assert (result.status, body_of(result)["error"]) == (401, "not_configured")
    assert (await ingress.handle("lorawan", b"{}")).status == 404


# --- batch, buffer and shutdown --------------------------------------------------------------------------------
async def test_batch_json_array_and_ndjson_mix_every_format() -> None:
    ingress, sink, recorder, _ = build()
    auth = b"Bearer " + BATCH_TOKEN.encode()
    array = orjson.dumps(
        [orjson.loads(thingpark_body()), chirpstack_up("70B3D57ED0000002"), tts_uplink("70B3D57ED0000003")]
    )
    ndjson = thingpark_body("70B3D57ED0000004") + b"\n\n" + thingpark_body("70B3D57ED0000005") + b"\n"
    first = await ingress.handle("batch", array, authorization=auth)
    second = await ingress.handle("batch", ndjson, authorization=auth)
    assert (first.status, body_of(first)) == (202, {"accepted": 3})
    assert (second.status, body_of(second)) == (202, {"accepted": 2})
    assert [topic.split("/")[2] for topic, _ in sink.items] == [f"70B3D57ED000000{n}" for n in range(1, 6)]
    assert sink.items[3][1] == thingpark_body("70B3D57ED0000004")  # an NDJSON line is published as received
    assert len(recorder.observed) == 5


async def test_a_batch_with_an_invalid_item_is_refused_whole() -> None:
    ingress, sink, _, _ = build()
    ndjson = thingpark_body() + b"\n" + thingpark_body("not-a-deveui") + b"\n" + b'{"other": 1}'
    result = await ingress.handle("batch", ndjson, authorization=BATCH_TOKEN.encode())
    assert result.status == 400
    assert [(item["index"], item["error"]) for item in body_of(result)["items"]] == [
        (1, "invalid_deveui"),
        (2, "malformed"),
    ]
    assert sink.items == []


async def test_full_buffer_is_429_with_retry_after() -> None:
    ingress, sink, _, registry = build(sink=Sink(capacity=1))
    assert (await ingress.handle("thingpark", thingpark_body())).status == 202
    result = await ingress.handle("thingpark", thingpark_body())
    batch = await ingress.handle(
        "batch", thingpark_body() + b"\n" + thingpark_body(), authorization=BATCH_TOKEN.encode()
    )
    assert (result.status, result.retry_after_secs) == (429, 1)
    assert batch.status == 429
    assert len(sink.items) == 1
    assert sample_value(registry, "bridge_uplinks_rejected_total", {"reason": "buffer_full"}) == 3


async def test_draining_or_stopped_is_503() -> None:
    ingress, sink, _, _ = build()
    sink.closed = True
    stopped = await ingress.handle("thingpark", thingpark_body())
    ingress.draining = True
    draining = await ingress.handle("thingpark", thingpark_body())
    assert (stopped.status, draining.status) == (503, 503)
    assert draining.retry_after_secs == 1


async def test_null_registrar_observes_nothing() -> None:
    registrar = NullRegistrar()
    await registrar.start()
    registrar.observe(DEV_EUI)
    await registrar.stop()
    ingress, sink, _, _ = build()
    assert (await ingress.handle("thingpark", thingpark_body())).status == 202
    assert len(sink.items) == 1


async def test_each_uplink_hands_its_user_properties_to_the_pool() -> None:
    ingress, sink, _, _ = build()
    await ingress.handle("tts", orjson.dumps(tts_uplink()), authorization=TTS_TOKEN.encode())
    batch = orjson.dumps([chirpstack_up("70B3D57ED0000002")])
    await ingress.handle("batch", batch, authorization=b"Bearer " + BATCH_TOKEN.encode())
    assert [dict(properties) for properties in sink.properties] == [
        {"DevEUI": DEV_EUI, "LnsKind": "tts", "EventType": "uplink", "FPort": "4"},
        {"DevEUI": "70B3D57ED0000002", "LnsKind": "chirpstack", "EventType": "uplink", "FPort": "3"},
    ]


async def test_with_delivery_ack_published_the_answer_waits_for_the_broker() -> None:
    config = configuration(lns=[{"kind": "thingpark", "asKey": AS_KEY}], uplinkQos=1, deliveryAck="published")
    ingress, sink, _, registry = build(config)
    fields = {"CustomerID": "100000507", "DevEUI": DEV_EUI, "FPort": 2, "FCntUp": 7, "payload_hex": "0102"}
    body, query = orjson.dumps({"DevEUI_uplink": fields}), signed_query(fields, "2026-05-01T12:00:10Z")
    answer = asyncio.ensure_future(ingress.handle("thingpark", body, query=query))
    await asyncio.sleep(0.01)
    assert not answer.done()
    assert (await ingress.handle("thingpark", body, query=query)).status == 403  # a copy while it waits
    sink.waiters[0].set_result("stale")
    refused = await answer
    assert (refused.status, body_of(refused)["error"], refused.retry_after_secs) == (503, "not_published", 1)
    assert sample_value(registry, "bridge_uplinks_rejected_total", {"reason": "not_published"}) == 1
    # ThingPark's retry carries the same Token: accepted again, and answered once the broker has it.
    retry = asyncio.ensure_future(ingress.handle("thingpark", body, query=query))
    await asyncio.sleep(0.01)
    sink.waiters[1].set_result(None)
    assert ((await retry).status, body_of(await retry)) == (202, {"accepted": 1})
