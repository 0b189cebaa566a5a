"""Event topics: derived from the uplink pattern or given, checked against AWS IoT's rules and the downlink filter."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bridge_domain.connection import ConnectionConfiguration
from bridge_domain.events import EventKind, EventSettings, derive_event_pattern

BASE: dict[str, Any] = {"deviceType": "sensor", "region": "eu-central-1", "protocol": "WSS"}


def configuration(**values: Any) -> ConnectionConfiguration:
    return ConnectionConfiguration.model_validate({**BASE, **values})


def issues(**values: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        configuration(**values)
    return {".".join(str(part) for part in error["loc"]): error["msg"] for error in caught.value.errors()}


@pytest.mark.parametrize(
    ("uplink", "events"),
    [
        ("tpx/things/{DevEUI}/uplink", "tpx/things/{DevEUI}/{Event}"),
        ("lora/{DevEUI}", "lora/{DevEUI}/{Event}"),
        ("{DevEUI}/up", "{DevEUI}/{Event}"),
        ("lora/{ApplicationId}/{DevEUI}/up", "lora/{DevEUI}/{Event}"),
        ("fleet/{DevEUI}/{FPort}/up", "fleet/{DevEUI}/{Event}"),
        ("$aws/rules/ingest/things/{DevEUI}/up", "$aws/rules/ingest/things/{DevEUI}/{Event}"),
    ],
)
def test_the_event_pattern_is_derived_from_the_uplink_pattern(uplink: str, events: str) -> None:
    assert derive_event_pattern(uplink) == events


def test_defaults_publish_joins_status_and_locations_only() -> None:
    settings = EventSettings()
    assert [kind for kind in EventKind if settings.enabled(kind)] == [
        EventKind.JOIN,
        EventKind.STATUS,
        EventKind.LOCATION,
    ]
    pattern = configuration().event_pattern
    assert pattern is not None
    assert pattern.render({"DevEUI": "70B3D57ED0000001", "Event": "join"}) == "tpx/things/70B3D57ED0000001/join"


@pytest.mark.parametrize(
    ("topic_pattern", "problem"),
    [
        ("lorawan/{DevEUI}/events", "pattern must contain {Event}"),
        ("lorawan/{Event}", "pattern must contain {DevEUI}"),
        ("lorawan/{DevEUI}/{Event}/{FPort}", "unknown placeholder(s) ['FPort']"),
        ("lorawan/{DevEUI}-{Event}", "placeholder must fill a whole topic level"),
        ("a/b/c/d/e/f/g/{DevEUI}/{Event}", "more than 7 slashes"),
        ("$aws/things/{DevEUI}/{Event}", "reserved by AWS IoT"),
    ],
)
def test_an_explicit_event_pattern_that_breaks_a_rule_is_refused_naming_the_field(
    topic_pattern: str, problem: str
) -> None:
    assert problem in issues(events={"topicPattern": topic_pattern})["events.topicPattern"]


def test_event_topics_that_the_downlink_filter_would_take_back_are_refused() -> None:
    message = issues(downlinkTopicPattern="tpx/things/{DevEUI}/join")["events.topicPattern"]
    assert message == "join events would match the downlink filter (a publish loop)"


def test_an_uplink_pattern_no_event_topic_can_be_derived_from_switches_events_off_with_a_warning() -> None:
    config = configuration(uplinkTopicPattern="u" * 239 + "/{DevEUI}")  # 256 bytes: no room for /{Event}
    assert config.event_pattern is None
    assert any("configuration.events" in warning for warning in config.warnings())


def test_unknown_event_switches_are_refused() -> None:
    assert "events.uplink" in issues(events={"uplink": True})
