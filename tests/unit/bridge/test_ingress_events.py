"""Events beyond uplinks at the ingress: each LNS sample to its topic and document, switched off, refused, or
handed to the downlink lifecycle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge_container.ingress.events import DownlinkReport
from bridge_container.ingress.pipeline import UplinkIngress
from bridge_container.metrics import UplinkMetrics, new_registry
from tests.metrics import sample_value
from tests.unit.bridge.test_ingress import CHIRPSTACK_TOKEN, NOW, TTS_TOKEN, Recorder, Sink, configuration

SAMPLES = Path(__file__).parents[2] / "events" / "lns"
CS_EUI = "0101010101010101"
TTS_EUI = "0004A30B001C0530"
TP_EUI = "000000000F1D8693"


def sample(name: str) -> bytes:
    return (SAMPLES / f"{name}.json").read_bytes()


def build(**overrides: Any) -> tuple[UplinkIngress, Sink, Recorder, Any, list[DownlinkReport]]:
    registry = new_registry()
    sink, recorder, reports = Sink(), Recorder(), []

    async def lifecycle(report: DownlinkReport) -> bool:
        reports.append(report)
        return True

    ingress = UplinkIngress(
        "default",
        configuration(**overrides),
        sink,
        UplinkMetrics(registry),
        recorder,
        recorder.report,
        lifecycle=lifecycle,
        now=lambda: NOW,
    )
    return ingress, sink, recorder, registry, reports


async def post(ingress: UplinkIngress, lns: str, body: bytes, event: str | None = None) -> Any:
    if lns == "chirpstack":
        query = f"event={event}".encode()
        return await ingress.handle(lns, body, query=query, authorization=CHIRPSTACK_TOKEN.encode())
    if lns == "tts":
        return await ingress.handle(lns, body, authorization=TTS_TOKEN.encode())
    return await ingress.handle(lns, body)


EVENTS = [
    ("chirpstack", "chirpstack_join", "join", f"tpx/things/{CS_EUI}/join", {"devAddr": "00189440"}),
    (
        "chirpstack",
        "chirpstack_status",
        "status",
        f"tpx/things/{CS_EUI}/status",
        {"battery": 75.5, "externalPower": False, "margin": 6},
    ),
    (
        "chirpstack",
        "chirpstack_location",
        "location",
        f"tpx/things/{CS_EUI}/location",
        {
            "latitude": 52.374,
            "longitude": 4.8897,
            "altitude": 12.5,
            "accuracy": 25.0,
            "locationSource": "GEO_RESOLVER_TDOA",
        },
    ),
    (
        "tts",
        "tts_join_accept",
        None,
        f"tpx/things/{TTS_EUI}/join",
        {"devAddr": "01497ECC", "time": "2020-02-17T07:49:09.935284891Z"},
    ),
    (
        "tts",
        "tts_location_solved",
        None,
        f"tpx/things/{TTS_EUI}/location",
        {"latitude": 52.374, "longitude": 4.8897, "service": "lora-cloud-geolocation-v3"},
    ),
    (
        "thingpark",
        "thingpark_notification_join",
        None,
        f"tpx/things/{TP_EUI}/join",
        {"devAddr": "0405F519", "lns": "thingpark"},
    ),
    (
        "thingpark",
        "thingpark_notification_devstatusans",
        None,
        f"tpx/things/{TP_EUI}/status",
        {"battery": 75.1, "externalPower": False, "margin": 7},
    ),
    (
        "thingpark",
        "thingpark_location",
        None,
        f"tpx/things/{TP_EUI}/location",
        {"latitude": 43.58081, "longitude": 1.4421667, "altitude": 146.3, "accuracy": 150.2, "locationSource": "1"},
    ),
]


@pytest.mark.parametrize(("lns", "name", "event", "topic", "fields"), EVENTS, ids=[case[1] for case in EVENTS])
async def test_each_event_is_published_on_its_topic_with_normalised_fields_and_its_source(
    lns: str, name: str, event: str | None, topic: str, fields: dict[str, Any]
) -> None:
    ingress, sink, _, registry, _ = build()
    result = await post(ingress, lns, sample(name), event)
    assert result.status == 202, result.body
    [(published_topic, payload)] = sink.items
    document = orjson.loads(payload)
    assert published_topic == topic
    assert {key: document[key] for key in fields} == fields
    assert document["source"] == json.loads(sample(name))
    labels = {"lns": lns, "event": document["event"]}
    assert sample_value(registry, "bridge_events_accepted_total", labels) == 1


@pytest.mark.parametrize(
    ("events", "lns", "name", "event", "topic"),
    [
        ({"log": True}, "chirpstack", "chirpstack_log", "log", f"tpx/things/{CS_EUI}/log"),
        ({"service": True}, "tts", "tts_service_data", None, f"tpx/things/{TTS_EUI}/service"),
        ({"normalized": True}, "tts", "tts_uplink_normalized", None, f"tpx/things/{TTS_EUI}/normalized"),
    ],
)
async def test_events_off_by_default_are_published_once_switched_on(
    events: dict[str, bool], lns: str, name: str, event: str | None, topic: str
) -> None:
    ingress, sink, _, registry, _ = build()
    assert (await post(ingress, lns, sample(name), event)).status == 202
    assert sink.items == []
    assert sample_value(registry, "bridge_ingress_ignored_total", {"lns": lns, "event": topic.rsplit("/", 1)[1]}) == 1

    ingress, sink, _, _, _ = build(events=events)
    assert (await post(ingress, lns, sample(name), event)).status == 202
    assert [item[0] for item in sink.items] == [topic]


async def test_an_event_switched_off_is_acknowledged_counted_as_ignored_and_not_published() -> None:
    ingress, sink, recorder, registry, _ = build(events={"join": False, "status": False})
    assert (await post(ingress, "chirpstack", sample("chirpstack_join"), "join")).status == 202
    assert (await post(ingress, "thingpark", sample("thingpark_notification_devstatusans"))).status == 202
    assert sink.items == []
    assert recorder.observed == []
    assert sample_value(registry, "bridge_ingress_ignored_total", {"lns": "chirpstack", "event": "join"}) == 1
    assert sample_value(registry, "bridge_ingress_ignored_total", {"lns": "thingpark", "event": "status"}) == 1


async def test_joins_register_the_thing_like_a_first_uplink() -> None:
    ingress, _, recorder, _, _ = build()
    await post(ingress, "chirpstack", sample("chirpstack_join"), "join")
    await post(ingress, "tts", sample("tts_join_accept"))
    await post(ingress, "thingpark", sample("thingpark_notification_join"))
    await post(ingress, "chirpstack", sample("chirpstack_status"), "status")
    assert recorder.observed == [CS_EUI, TTS_EUI, TP_EUI]


async def test_an_explicit_event_topic_pattern_is_used() -> None:
    ingress, sink, _, _, _ = build(events={"topicPattern": "lorawan/{Event}/{DevEUI}"})
    await post(ingress, "chirpstack", sample("chirpstack_status"), "status")
    assert sink.items[0][0] == f"lorawan/status/{CS_EUI}"


async def test_a_status_without_battery_reading_says_so() -> None:
    ingress, sink, _, _, _ = build()
    document = json.loads(sample("chirpstack_status"))
    document.update(externalPowerSource=True)
    del document["margin"]  # protobuf's JSON mapping leaves out a zero
    await post(ingress, "chirpstack", orjson.dumps(document), "status")
    published = orjson.loads(sink.items[0][1])
    assert (published["battery"], published["externalPower"], published["margin"]) == (None, True, 0)


@pytest.mark.parametrize(
    ("lns", "name", "event", "status", "reference", "correlation_ids"),
    [
        ("chirpstack", "chirpstack_txack", "txack", "sent", "ac4a6ec5-4e0a-4b25-a1a2-b1e8c6e1e2a4", ()),
        ("chirpstack", "chirpstack_ack", "ack", "acknowledged", "ac4a6ec5-4e0a-4b25-a1a2-b1e8c6e1e2a4", ()),
        ("chirpstack", "chirpstack_log_expired", "log", "expired", "ac4a6ec5-4e0a-4b25-a1a2-b1e8c6e1e2a4", ()),
        ("tts", "tts_downlink_queued", None, "queued", None, ("aws-iot-bridge:order-17",)),
        ("tts", "tts_downlink_sent", None, "sent", None, ("aws-iot-bridge:order-17",)),
        ("tts", "tts_downlink_ack", None, "acknowledged", None, ("aws-iot-bridge:order-17",)),
        ("tts", "tts_downlink_nack", None, "nacked", None, ("aws-iot-bridge:order-17",)),
        ("tts", "tts_downlink_failed", None, "failed", None, ("aws-iot-bridge:order-17",)),
    ],
)
async def test_downlink_reports_go_to_the_lifecycle_handler_not_to_an_event_topic(
    lns: str, name: str, event: str | None, status: str, reference: str | None, correlation_ids: tuple[str, ...]
) -> None:
    ingress, sink, _, _, reports = build()
    assert (await post(ingress, lns, sample(name), event)).status == 202
    assert sink.items == []
    [report] = reports
    assert (report.lns, report.status, report.reference) == (lns, status, reference)
    assert set(correlation_ids) <= set(report.correlation_ids)
    assert report.dev_eui == (CS_EUI if lns == "chirpstack" else TTS_EUI)


async def test_a_chirpstack_ack_without_acknowledged_is_a_nack() -> None:
    ingress, _, _, _, reports = build()
    document = json.loads(sample("chirpstack_ack"))
    del document["acknowledged"]  # false is left out of protobuf's JSON mapping
    await post(ingress, "chirpstack", orjson.dumps(document), "ack")
    assert reports[0].status == "nacked"


async def test_tts_downlink_failed_names_the_error() -> None:
    ingress, _, _, _, reports = build()
    await post(ingress, "tts", sample("tts_downlink_failed"))
    assert reports[0].detail == "application_downlink_too_long: application downlink payload is too long"


async def test_downlink_reports_are_counted_as_ignored_when_downlinks_are_off() -> None:
    registry = new_registry()
    sink, recorder = Sink(), Recorder()
    ingress = UplinkIngress("default", configuration(), sink, UplinkMetrics(registry), recorder, None, now=lambda: NOW)
    assert (await post(ingress, "tts", sample("tts_downlink_ack"))).body == b'{"accepted":0}'
    assert sample_value(registry, "bridge_ingress_ignored_total", {"lns": "tts", "event": "downlink_acknowledged"}) == 1


@pytest.mark.parametrize(
    ("lns", "name", "event", "change", "field"),
    [
        ("chirpstack", "chirpstack_status", "status", {"margin": 40}, "margin"),
        ("chirpstack", "chirpstack_status", "status", {"batteryLevel": 101}, "batteryLevel"),
        ("chirpstack", "chirpstack_status", "status", {"externalPowerSource": "yes"}, "externalPowerSource"),
        ("chirpstack", "chirpstack_location", "location", {"location": {"latitude": 91, "longitude": 0}}, None),
        ("chirpstack", "chirpstack_location", "location", {"location": None}, "location"),
        ("chirpstack", "chirpstack_join", "join", {"devAddr": "00/+"}, "devAddr"),
        ("chirpstack", "chirpstack_txack", "txack", {"queueItemId": None}, "queueItemId"),
        ("chirpstack", "chirpstack_log", "log", {"level": "PANIC"}, "level"),
        ("tts", "tts_location_solved", None, {"location_solved": {"location": {"latitude": "north"}}}, None),
        ("tts", "tts_downlink_ack", None, {"end_device_ids": {"dev_eui": "#"}}, "end_device_ids.dev_eui"),
    ],
)
async def test_invalid_event_fields_are_refused_with_the_field_named(
    lns: str, name: str, event: str | None, change: dict[str, Any], field: str | None
) -> None:
    ingress, sink, _, registry, reports = build(events={"log": True})
    document = json.loads(sample(name))
    document.update(change)
    result = await post(ingress, lns, orjson.dumps(document), event)
    assert result.status == 400
    if field is not None:
        assert orjson.loads(result.body)["field"] == field
    assert (sink.items, reports) == ([], [])
    reason = orjson.loads(result.body)["error"]
    assert reason in {"invalid_field", "invalid_deveui"}
    assert sample_value(registry, "bridge_uplinks_rejected_total", {"lns": lns, "reason": reason}) == 1


async def test_a_notification_type_the_bridge_does_not_carry_is_counted_under_its_root() -> None:
    ingress, sink, _, registry, _ = build()
    document = json.loads(sample("thingpark_notification_join"))
    for kind in ("reset", "something-else"):
        document["DevEUI_notification"]["Type"] = kind
        assert (await post(ingress, "thingpark", orjson.dumps(document))).status == 202
    assert sink.items == []
    labels = {"lns": "thingpark", "event": "DevEUI_notification"}
    assert sample_value(registry, "bridge_ingress_ignored_total", labels) == 2
