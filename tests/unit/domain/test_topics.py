"""Topic patterns: rendering, AWS IoT topic rules, subscription filters and parsing back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge_domain.deveui import normalise_dev_eui
from bridge_domain.exceptions import InvalidDevEuiError, TopicError, TopicValueError
from bridge_domain.topics import (
    DOWNLINK_TOPIC_FIELDS,
    UPLINK_TOPIC_FIELDS,
    TopicPattern,
    check_topic,
    shared_subscription,
)

UPLINK = TopicPattern.parse("tpx/things/{DevEUI}/uplink")
DOWNLINK = TopicPattern.parse("tpx/things/{DevEUI}/downlink", allowed=DOWNLINK_TOPIC_FIELDS)
DEV_EUI = "70B3D57ED0000001"


def test_render_substitutes_dev_eui() -> None:
    assert UPLINK.render({"DevEUI": DEV_EUI}) == "tpx/things/70B3D57ED0000001/uplink"


def test_render_uses_any_uplink_field() -> None:
    pattern = TopicPattern.parse("lora/{DevEUI}/port/{FPort}")
    assert pattern.render({"DevEUI": DEV_EUI, "FPort": 10}) == "lora/70B3D57ED0000001/port/10"


@pytest.mark.parametrize("value", ["a/b", "+", "#", "x\x00y", ""])
def test_render_refuses_values_that_change_the_structure(value: str) -> None:
    with pytest.raises(TopicValueError):
        UPLINK.render({"DevEUI": value})


def test_render_refuses_missing_value() -> None:
    with pytest.raises(TopicValueError, match="no value"):
        UPLINK.render({})


def test_render_refuses_topics_longer_than_256_bytes() -> None:
    pattern = TopicPattern.parse("t/{DevEUI}/{DevAddr}")
    with pytest.raises(TopicValueError, match="256"):
        pattern.render({"DevEUI": DEV_EUI, "DevAddr": "é" * 130})


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("tpx/+/{DevEUI}", "wildcards"),
        ("tpx/#/{DevEUI}", "wildcards"),
        ("tpx/things/uplink", "DevEUI"),
        ("a/b/c/d/e/f/g/h/{DevEUI}", "slashes"),
        ("$aws/things/{DevEUI}/shadow/update", "reserved"),
        ("tpx//{DevEUI}", "empty topic level"),
        ("tpx/{DevEUI}/", "empty topic level"),
        ("tpx/{Unknown}/{DevEUI}", "unknown placeholder"),
        ("tpx/{DevEUI/x", "not part of"),
        ("", "empty"),
    ],
)
def test_parse_refuses_patterns_breaking_aws_rules(pattern: str, reason: str) -> None:
    with pytest.raises(TopicError, match=reason):
        TopicPattern.parse(pattern)


def test_basic_ingest_prefix_is_allowed_and_not_counted() -> None:
    pattern = TopicPattern.parse("$aws/rules/lorawan_uplink/a/b/c/d/e/f/{DevEUI}")
    assert pattern.render({"DevEUI": DEV_EUI}).endswith("/f/70B3D57ED0000001")


def test_downlink_filter_replaces_dev_eui_with_plus() -> None:
    assert DOWNLINK.subscription_filter() == "tpx/things/+/downlink"


def test_placeholder_must_fill_a_whole_level_to_derive_a_filter() -> None:
    pattern = TopicPattern.parse("tpx/dev-{DevEUI}/downlink", allowed=DOWNLINK_TOPIC_FIELDS)
    with pytest.raises(TopicError, match="whole topic level"):
        pattern.subscription_filter()


def test_parse_topic_recovers_dev_eui() -> None:
    assert DOWNLINK.parse_topic("tpx/things/70B3D57ED0000001/downlink") == {"DevEUI": DEV_EUI}


@pytest.mark.parametrize(
    "topic", ["tpx/things/70B3D57ED0000001/uplink", "tpx/things//downlink", "tpx/things/a/b/downlink", "x"]
)
def test_parse_topic_rejects_other_topics(topic: str) -> None:
    assert DOWNLINK.parse_topic(topic) is None


def test_feedback_topic_is_a_child_of_the_downlink_pattern() -> None:
    assert DOWNLINK.child("sent").render({"DevEUI": DEV_EUI}) == "tpx/things/70B3D57ED0000001/downlink/sent"


def test_shared_subscription_form() -> None:
    assert shared_subscription("bridge", "tpx/things/+/downlink") == "$share/bridge/tpx/things/+/downlink"
    check_topic(shared_subscription("bridge", "tpx/things/+/downlink"), is_filter=True)


@pytest.mark.parametrize("group", ["", "a/b", "a+", "x" * 129])
def test_shared_subscription_refuses_bad_group(group: str) -> None:
    with pytest.raises(TopicError):
        shared_subscription(group, "t/+")


@pytest.mark.parametrize("value", ["70b3d57ed0000001", "70B3D57ED0000001"])
def test_dev_eui_normalised_to_upper_case(value: str) -> None:
    assert normalise_dev_eui(value) == DEV_EUI


@pytest.mark.parametrize("value", ["70B3D57ED000000", "70B3D57ED00000011", "70B3D57ED000000G", "70B3/57ED0000001", 7])
def test_invalid_dev_eui_is_refused(value: object) -> None:
    with pytest.raises(InvalidDevEuiError):
        normalise_dev_eui(value)


# --- properties ---------------------------------------------------------------------------------------------------
field_values = st.one_of(st.text(max_size=40), st.integers(), st.sampled_from(["+", "#", "/", "a/b", "\x00", ""]))
patterns = st.sampled_from(
    [
        "tpx/things/{DevEUI}/uplink",
        "lora/{DevEUI}/{FPort}/{DevAddr}",
        "$aws/rules/uplink_rule/{DevEUI}",
        "{LnsKind}/{ApplicationId}/{DevEUI}/{FCntUp}",
    ]
)


@given(pattern_text=patterns, values=st.fixed_dictionaries(dict.fromkeys(UPLINK_TOPIC_FIELDS, field_values)))
def test_no_value_ever_yields_a_wildcard_or_an_extra_level(pattern_text: str, values: dict[str, object]) -> None:
    pattern = TopicPattern.parse(pattern_text)
    try:
        topic = pattern.render(values)
    except TopicValueError:
        return
    assert "+" not in topic
    assert "#" not in topic
    assert "\x00" not in topic
    assert topic.count("/") == pattern_text.count("/")
    assert len(topic.encode()) <= 256
    check_topic(topic)


@given(dev_eui=st.text(max_size=20))
def test_only_valid_dev_euis_normalise(dev_eui: str) -> None:
    try:
        normalised = normalise_dev_eui(dev_eui)
    except InvalidDevEuiError:
        return
    assert len(normalised) == 16
    assert all(c in "0123456789ABCDEF" for c in normalised)
    assert DOWNLINK.parse_topic(DOWNLINK.render({"DevEUI": normalised})) == {"DevEUI": normalised}
