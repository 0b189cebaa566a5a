"""Topic patterns: rendering, AWS IoT topic rules, subscription filters and parsing back."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bridge_domain.deveui import normalise_dev_eui
from bridge_domain.exceptions import InvalidDevEuiError, TopicError, TopicValueError
from bridge_domain.topics import (
    DOWNLINK_TOPIC_FIELDS,
    UPLINK_TOPIC_FIELDS,
    TopicPattern,
    check_topic,
    check_topic_value,
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


def test_render_accepts_a_topic_of_exactly_256_bytes_and_refuses_257() -> None:
    pattern = TopicPattern.parse("t/{DevEUI}/{DevAddr}")  # 19 bytes around DevAddr: "t/", the DevEUI, "/"
    assert len(pattern.render({"DevEUI": DEV_EUI, "DevAddr": "é" * 118 + "a"}).encode()) == 256
    with pytest.raises(TopicValueError, match=r"^rendered topic is longer than 256 bytes$"):
        pattern.render({"DevEUI": DEV_EUI, "DevAddr": "é" * 119})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "value for {DevEUI} is empty"),
        ("a/b", "value for {DevEUI} contains '/', which would change the topic structure"),
        ("a+", "value for {DevEUI} contains '+', which would change the topic structure"),
        ("#", "value for {DevEUI} contains '#', which would change the topic structure"),
        ("a\x00b", "value for {DevEUI} contains NUL, which would change the topic structure"),
    ],
)
def test_a_refused_value_is_named_with_its_placeholder_and_character(value: str, message: str) -> None:
    with pytest.raises(TopicValueError) as caught:
        UPLINK.render({"DevEUI": value})
    assert str(caught.value) == message


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


# --- AWS IoT's topic rules at their exact edges ----------------------------------------------------------------------
EIGHT_LEVELS = "/".join("abcdefgh")  # 7 slashes
BASIC_INGEST = "$aws/rules/lorawan_uplink/"


@pytest.mark.parametrize(
    "topic",
    [
        "a" * 256,
        "é" * 128,  # 256 UTF-8 bytes
        EIGHT_LEVELS,
        BASIC_INGEST + EIGHT_LEVELS,  # the prefix's 3 slashes do not count
        BASIC_INGEST + "a" * (256 - len(BASIC_INGEST)),
        "$share/bridge/t",
    ],
)
def test_a_topic_at_each_limit_is_accepted(topic: str) -> None:
    check_topic(topic)


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("", "topic is empty"),
        ("a" * 257, "topic is longer than 256 bytes"),
        ("é" * 128 + "a", "topic is longer than 256 bytes"),
        (BASIC_INGEST + "a" * (257 - len(BASIC_INGEST)), "topic is longer than 256 bytes"),
        (EIGHT_LEVELS + "/i", "topic has more than 7 slashes"),
        (BASIC_INGEST + EIGHT_LEVELS + "/i", "topic has more than 7 slashes"),
        ("a/\x00", "topic contains NUL"),
        ("$aws/things/t", "topics starting with '$' are reserved by AWS IoT (only '$aws/rules/...' may be used)"),
        ("$aws/rule/t", "topics starting with '$' are reserved by AWS IoT (only '$aws/rules/...' may be used)"),
        ("a/+/b", "a published topic cannot contain '+' or '#'"),
        ("a/#", "a published topic cannot contain '+' or '#'"),
    ],
)
def test_a_topic_past_each_limit_is_refused_naming_the_rule(topic: str, message: str) -> None:
    with pytest.raises(TopicError, match=rf"^{re.escape(message)}$"):
        check_topic(topic)


@pytest.mark.parametrize("topic_filter", ["a/+/b", "a/#", "$share/bridge/a/+/b"])
def test_wildcards_are_accepted_in_a_filter_only(topic_filter: str) -> None:
    check_topic(topic_filter, is_filter=True)
    with pytest.raises(TopicError, match="cannot contain"):
        check_topic(topic_filter)


def test_a_value_check_accepts_one_whole_level() -> None:
    check_topic_value("DevEUI", DEV_EUI)


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


def test_a_child_keeps_the_placeholders_its_parent_was_allowed() -> None:
    parent = TopicPattern.parse("d/{Tenant}/{DevEUI}", allowed=frozenset({"DevEUI", "Tenant"}))
    assert parent.child("sent").render({"DevEUI": DEV_EUI, "Tenant": "t1"}) == f"d/t1/{DEV_EUI}/sent"


def test_shared_subscription_form() -> None:
    assert shared_subscription("bridge", "tpx/things/+/downlink") == "$share/bridge/tpx/things/+/downlink"
    check_topic(shared_subscription("bridge", "tpx/things/+/downlink"), is_filter=True)


def test_shared_subscription_accepts_a_group_of_128_characters() -> None:
    assert shared_subscription("X" * 128, "t/+") == f"$share/{'X' * 128}/t/+"


@pytest.mark.parametrize("group", ["", "a/b", "a+", "#", "x" * 129])
def test_shared_subscription_refuses_bad_group(group: str) -> None:
    with pytest.raises(
        TopicError, match=r"^shared subscription group must be 1-128 characters without '/', '\+' or '#'$"
    ):
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


def _values(dev_eui: str) -> dict[str, object]:
    return {**dict.fromkeys(UPLINK_TOPIC_FIELDS, "1"), "DevEUI": dev_eui}


# The edges: 238 characters in "tpx/things/{DevEUI}/uplink" (18 bytes of literals) render exactly 256 bytes, 239 one
# more; 233 bytes after the Basic Ingest prefix (23 bytes) are exactly 256 too.
@given(pattern_text=patterns, values=st.fixed_dictionaries(dict.fromkeys(UPLINK_TOPIC_FIELDS, field_values)))
@example(pattern_text="tpx/things/{DevEUI}/uplink", values=_values("a" * 238))
@example(pattern_text="tpx/things/{DevEUI}/uplink", values=_values("a" * 239))
@example(pattern_text="$aws/rules/uplink_rule/{DevEUI}", values=_values("é" * 116 + "a"))
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
