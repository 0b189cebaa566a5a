"""Topic keywords through the ingress: each LNS's document feeds the topic, a hostile value is a counted 400."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge_domain.topics import check_topic
from tests.metrics import sample_value
from tests.unit.bridge.test_ingress import (
    CHIRPSTACK_TOKEN,
    DEV_EUI,
    TTS_TOKEN,
    body_of,
    build,
    chirpstack_up,
    configuration,
    thingpark_body,
    tts_uplink,
)

CS_AUTH = b"Bearer " + CHIRPSTACK_TOKEN.encode()


async def test_thingpark_customer_data_names_the_topic_with_a_fallback() -> None:
    ingress, sink, _, _ = build(configuration(uplinkTopicPattern="tp/{CustomerData.site|'unassigned'}/{DevEUI}"))
    named = await ingress.handle("thingpark", thingpark_body(CustomerData={"site": "north"}))
    unnamed = await ingress.handle("thingpark", thingpark_body())
    assert (named.status, unnamed.status) == (202, 202)
    assert [topic for topic, _ in sink.items] == [f"tp/north/{DEV_EUI}", f"tp/unassigned/{DEV_EUI}"]


async def test_chirpstack_and_tts_documents_are_reached_by_their_own_paths() -> None:
    pattern = "lora/{deviceInfo.deviceName|end_device_ids.device_id}/{DevEUI}/{rxInfo[0].rssi|'-'}"
    ingress, sink, _, _ = build(configuration(uplinkTopicPattern=pattern))
    cs = await ingress.handle("chirpstack", orjson.dumps(chirpstack_up()), query=b"event=up", authorization=CS_AUTH)
    tts = await ingress.handle("tts", orjson.dumps(tts_uplink()), authorization=TTS_TOKEN.encode())
    assert (cs.status, tts.status) == (202, 202)
    assert [topic for topic, _ in sink.items] == [f"lora/sensor-1/{DEV_EUI}/-57", f"lora/dev1/{DEV_EUI}/-"]


@pytest.mark.parametrize("site", ["a/b", "+", "#", "x\x00", {"nested": 1}, ["a"]])
async def test_a_value_that_would_leave_its_level_is_refused_counted_and_not_published(site: object) -> None:
    ingress, sink, recorder, registry = build(configuration(uplinkTopicPattern="tp/{CustomerData.site|'x'}/{DevEUI}"))
    result = await ingress.handle("thingpark", thingpark_body(CustomerData={"site": site}))
    answer = body_of(result)
    assert (result.status, answer["error"], answer["field"]) == (400, "topic", "CustomerData.site")
    assert sink.items == []
    assert recorder.observed == []
    assert sample_value(registry, "bridge_uplinks_rejected_total", {"lns": "thingpark", "reason": "topic"}) == 1


async def test_an_uplink_with_no_value_for_a_keyword_is_refused_naming_the_field() -> None:
    ingress, sink, _, _ = build(configuration(uplinkTopicPattern="tp/{DevEUI_uplink.CustomerData.site}/{DevEUI}"))
    result = await ingress.handle("thingpark", thingpark_body())
    assert (result.status, body_of(result)["field"]) == (400, "DevEUI_uplink.CustomerData.site")
    assert "no value for the topic" in body_of(result)["message"]
    assert sink.items == []


async def test_a_batch_item_with_a_hostile_keyword_value_refuses_the_whole_batch() -> None:
    ingress, sink, _, _ = build(configuration(uplinkTopicPattern="tp/{CustomerData.site|'x'}/{DevEUI}"))
    items = [
        orjson.loads(thingpark_body(CustomerData={"site": "north"})),
        orjson.loads(thingpark_body(CustomerData={"site": "a/b"})),
    ]
    result = await ingress.handle("batch", orjson.dumps(items), authorization=b"Bearer batch-token")
    assert result.status == 400
    assert body_of(result)["items"][0]["field"] == "CustomerData.site"
    assert sink.items == []


@pytest.mark.parametrize(
    ("pattern", "topic"),
    [
        ("tpx/things/{DevEUI}/uplink", f"tpx/things/{DEV_EUI}/uplink"),
        ("a/b/c/d/e/f/{FPort}/{DevEUI}", f"a/b/c/d/e/f/2/{DEV_EUI}"),
        ("tp/{CustomerData.site|'none'}/{DevEUI}", f"tp/none/{DEV_EUI}"),
    ],
)
async def test_basic_ingest_puts_the_rule_prefix_before_every_kind_of_pattern(pattern: str, topic: str) -> None:
    config = configuration(uplinkTopicPattern=pattern, uplinkDelivery="basicIngest", basicIngestRule="store_up")
    ingress, sink, _, _ = build(config)
    assert (await ingress.handle("thingpark", thingpark_body())).status == 202
    assert sink.items[0][0] == f"$aws/rules/store_up/{topic}"


HOSTILE_TEXT = st.text(alphabet="/+#$\x00éa- ", max_size=12)
DOCUMENT_VALUES = st.one_of(
    HOSTILE_TEXT, st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none(), st.lists(HOSTILE_TEXT, max_size=2)
)


@settings(max_examples=60, deadline=None)
@given(site=DOCUMENT_VALUES, name=DOCUMENT_VALUES)
def test_any_document_value_through_any_lns_publishes_within_the_patterns_levels_or_is_a_400(
    site: object, name: object
) -> None:
    pattern = "k/{CustomerData.site|deviceInfo.tags.site|end_device_ids.device_id}/{DevEUI}/{deviceInfo.deviceName|'-'}"
    ingress, sink, _, _ = build(configuration(uplinkTopicPattern=pattern))
    cs_event = chirpstack_up(
        deviceInfo={"devEui": DEV_EUI, "applicationId": "a", "tags": {"site": site}, "deviceName": name}
    )
    tts_event = tts_uplink()
    tts_event["end_device_ids"]["device_id"] = site
    requests = [
        ("thingpark", thingpark_body(CustomerData={"site": site}), b"", None),
        ("chirpstack", orjson.dumps(cs_event), b"event=up", CS_AUTH),
        ("tts", orjson.dumps(tts_event), b"", TTS_TOKEN.encode()),
    ]
    for lns, body, query, authorization in requests:
        before = len(sink.items)
        result = asyncio.run(ingress.handle(lns, body, query=query, authorization=authorization))
        assert result.status in (202, 400), (lns, result)
        if result.status == 400:
            assert body_of(result)["error"] == "topic"
            assert len(sink.items) == before
            continue
        topic = sink.items[-1][0]
        check_topic(topic)
        levels = topic.split("/")
        assert (len(levels), levels[0], levels[2]) == (4, "k", DEV_EUI)
        assert "" not in levels
