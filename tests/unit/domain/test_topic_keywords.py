"""ThingPark's topic keywords: the grammar, fallbacks, and that no value found in a document escapes its level."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge_domain.exceptions import TopicError, TopicValueError
from bridge_domain.quotas import MAX_TOPIC_BYTES
from bridge_domain.topic_keywords import (
    ConstantAlternative,
    FieldAlternative,
    KeywordValueError,
    PathAlternative,
)
from bridge_domain.topics import UPLINK_TOPIC_FIELDS, TopicPattern, check_topic

DEV_EUI = "70B3D57ED0000001"
DOCUMENT: dict[str, Any] = {
    "DevEUI_uplink": {
        "DevEUI": DEV_EUI,
        "FPort": 2,
        "CustomerData": {"alr": {"pro": "ABEEWAY/MICRO", "ver": "2"}, "name": "pump-7", "empty": ""},
        "Lrrs": {"Lrr": [{"Lrrid": "FF0109A4", "LrrRSSI": -57.5}, {"Lrrid": "FF0109A5"}]},
        "ack": False,
    }
}


def keywords(pattern: str) -> TopicPattern:
    return TopicPattern.parse(pattern, allowed=UPLINK_TOPIC_FIELDS, keywords=True)


def record_field(name: str) -> object | None:
    return {"DevEUI": DEV_EUI, "FPort": 2, "LnsKind": "thingpark"}.get(name)


def render(pattern: str, document: object = DOCUMENT, *, thingpark: bool = True) -> str:
    return keywords(pattern).render_keywords(record_field, document, thingpark=thingpark)


# --- grammar ---------------------------------------------------------------------------------------------------
def test_a_pattern_of_todays_placeholders_has_no_keywords() -> None:
    pattern = keywords("lora/{DevEUI}/{FPort}")
    assert pattern.has_keywords is False
    assert [expression.alternatives for expression in pattern.expressions] == [
        (FieldAlternative("DevEUI"),),
        (FieldAlternative("FPort"),),
    ]


def test_paths_fallbacks_and_a_constant_are_parsed_once() -> None:
    pattern = keywords("tp/{DevEUI}/{DevEUI_uplink.Lrrs.Lrr[1].Lrrid|CustomerData.name|FPort|'none'}")
    assert pattern.has_keywords is True
    assert pattern.expressions[1].alternatives == (
        PathAlternative("DevEUI_uplink.Lrrs.Lrr[1].Lrrid", ("DevEUI_uplink", "Lrrs", "Lrr", 1, "Lrrid")),
        PathAlternative("CustomerData.name", ("CustomerData", "name")),
        FieldAlternative("FPort"),
        ConstantAlternative("none"),
    )


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("tp/{DevEUI}/{}", "empty placeholder"),
        ("tp/{DevEUI}/{CustomerData}", "unknown placeholder {CustomerData}"),
        ("tp/{DevEUI}/{DevEUI_uplink.CustomerData.name|'a'|FPort}", "constant can only be the last"),
        ("tp/{DevEUI}/{DevEUI_uplink..name}", "neither a field"),
        ("tp/{DevEUI}/{DevEUI_uplink.Lrr[x]}", "neither a field"),
        ("tp/{DevEUI}/{DevEUI_uplink.Lrr[12345]}", "neither a field"),
        ("tp/{DevEUI}/{'a/b'}", "neither a field"),
        ("tp/{DevEUI}/{'+'}", "neither a field"),
        ("tp/{DevEUI}/{DevEUI_uplink.a|}", "neither a field"),
        ("{'$aws'}/{DevEUI}", "cannot start with '$'"),
        ("tp/{DevEUI}/{DevEUI_uplink.a}{", "not part of a {Placeholder}"),
        ("tp/{DevEUI_uplink.DevEUI}/uplink", "must contain {DevEUI}"),
        ("a/b/c/d/e/f/g/{DevEUI}/{DevEUI_uplink.x}", "more than 7 slashes"),
        ("tp/{DevEUI}/+/{DevEUI_uplink.x}", "wildcards"),
    ],
)
def test_a_bad_keyword_pattern_is_refused_with_its_reason(pattern: str, reason: str) -> None:
    with pytest.raises(TopicError, match=re.escape(reason)):
        keywords(pattern)


def test_keywords_are_refused_where_only_placeholders_are_allowed() -> None:
    with pytest.raises(TopicError, match="unknown placeholder"):
        TopicPattern.parse("tp/{DevEUI}/{DevEUI_uplink.CustomerData.name}")


# --- resolution ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "topic"),
    [
        ("tp/{DevEUI}/{DevEUI_uplink.CustomerData.alr.ver}", f"tp/{DEV_EUI}/2"),
        ("tp/{DevEUI}/{CustomerData.name}", f"tp/{DEV_EUI}/pump-7"),
        ("tp/{DevEUI}/{DevEUI_uplink.Lrrs.Lrr[1].Lrrid}", f"tp/{DEV_EUI}/FF0109A5"),
        ("tp/{DevEUI}/{Lrrs.Lrr[0].LrrRSSI}", f"tp/{DEV_EUI}/-57.5"),
        ("tp/{DevEUI}/{DevEUI_uplink.ack}", f"tp/{DEV_EUI}/false"),
        ("tp/{DevEUI}/{DevEUI_uplink.missing|CustomerData.name}", f"tp/{DEV_EUI}/pump-7"),
        ("tp/{DevEUI}/{DevEUI_uplink.Lrrs.Lrr[5].Lrrid|FPort}", f"tp/{DEV_EUI}/2"),
        ("tp/{DevEUI}/{CustomerData.empty|'unnamed'}", f"tp/{DEV_EUI}/unnamed"),
        ("tp/{DevEUI}/{CustomerData.name.deeper|'unnamed'}", f"tp/{DEV_EUI}/unnamed"),
        ("tp/{DevEUI}/{DevEUI_uplink.Lrrs[0]|'x'}", f"tp/{DEV_EUI}/x"),
        ("{CustomerData.name}-{DevEUI}/up", f"pump-7-{DEV_EUI}/up"),
    ],
)
def test_keywords_resolve_against_the_document_with_fallbacks(pattern: str, topic: str) -> None:
    assert render(pattern) == topic


def test_the_thingpark_root_may_be_left_out_only_for_thingpark_documents() -> None:
    document = {"deviceInfo": {"tags": {"site": "north"}}}
    assert render("cs/{DevEUI}/{deviceInfo.tags.site}", document, thingpark=False) == f"cs/{DEV_EUI}/north"
    with pytest.raises(KeywordValueError) as caught:
        render("tp/{DevEUI}/{CustomerData.name}", {"CustomerData": None, "DevEUI_uplink": {}}, thingpark=False)
    assert caught.value.field == "CustomerData.name"


def test_no_alternative_with_a_value_names_the_first_and_what_was_tried() -> None:
    with pytest.raises(KeywordValueError) as caught:
        render("tp/{DevEUI}/{DevEUI_uplink.site|CustomerData.zone}")
    assert caught.value.field == "DevEUI_uplink.site"
    assert "tried DevEUI_uplink.site, CustomerData.zone" in caught.value.problem


@pytest.mark.parametrize("node", ["CustomerData.alr", "Lrrs.Lrr"])
def test_an_object_or_array_is_refused_not_skipped(node: str) -> None:
    with pytest.raises(KeywordValueError, match="object or an array") as caught:
        render(f"tp/{{DevEUI}}/{{{node}|'fallback'}}")
    assert caught.value.field == node


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a/b", "'/'"),
        ("+", "'+'"),
        ("#", "'#'"),
        ("a\x00", "NUL"),
        ("\ud800", "UTF-8"),
    ],
)
def test_a_hostile_value_is_refused_naming_its_field_even_with_a_fallback(value: str, problem: str) -> None:
    document = {"DevEUI_uplink": {"CustomerData": {"name": value}}}
    with pytest.raises(KeywordValueError, match=re.escape(problem)) as caught:
        render("tp/{DevEUI}/{CustomerData.name|'fallback'}", document)
    assert caught.value.field == "CustomerData.name"


def test_a_value_starting_the_topic_cannot_make_it_reserved() -> None:
    document = {"DevEUI_uplink": {"CustomerData": {"name": "$aws"}}}
    with pytest.raises(KeywordValueError, match=r"'\$'"):
        render("{CustomerData.name}/{DevEUI}", document)
    assert render("x/{CustomerData.name}/{DevEUI}", document) == f"x/$aws/{DEV_EUI}"


def test_a_value_making_the_topic_longer_than_256_bytes_is_refused() -> None:
    pattern = "tp/{DevEUI}/{CustomerData.name}"
    room = MAX_TOPIC_BYTES - len(f"tp/{DEV_EUI}/")
    assert len(render(pattern, {"DevEUI_uplink": {"CustomerData": {"name": "é" * (room // 2)}}}).encode()) == 256
    with pytest.raises(TopicValueError, match="256"):
        render(pattern, {"DevEUI_uplink": {"CustomerData": {"name": "é" * (room // 2) + "a"}}})


def test_a_placeholder_value_starting_the_topic_cannot_make_it_reserved() -> None:
    with pytest.raises(TopicValueError, match=r"'\$'"):
        TopicPattern.parse("{ApplicationId}/{DevEUI}").render({"ApplicationId": "$aws", "DevEUI": DEV_EUI})


# --- property: no value escapes its level ----------------------------------------------------------------------
PATTERNS = (
    "tp/{DevEUI}/{CustomerData.name|'none'}/up",
    "{CustomerData.name}/{DevEUI}",
    "a/{DevEUI}/{DevEUI_uplink.Lrrs.Lrr[0].Lrrid|CustomerData.name}-{CustomerData.name|FPort}",
)
SCALARS = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="/+#$\x00é ab", max_size=40),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=2), st.dictionaries(st.text(max_size=3), SCALARS, max_size=2))


@given(pattern=st.sampled_from(PATTERNS), name=VALUES, lrrid=VALUES)
def test_every_rendered_topic_keeps_its_levels_or_is_refused(pattern: str, name: object, lrrid: object) -> None:
    document = {"DevEUI_uplink": {"CustomerData": {"name": name}, "Lrrs": {"Lrr": [{"Lrrid": lrrid}]}}}
    parsed = keywords(pattern)
    try:
        topic = parsed.render_keywords(record_field, document, thingpark=True)
    except TopicError:
        return
    check_topic(topic)  # AWS IoT's rules: length, slashes, no wildcard, no NUL, not reserved
    levels = topic.split("/")
    assert len(levels) == pattern.count("/") + 1
    assert "" not in levels
    assert not topic.startswith("$")
    # Each literal level of the pattern is still where the pattern put it.
    for expected, actual in zip(pattern.split("/"), levels, strict=True):
        if "{" not in expected:
            assert actual == expected


def test_a_placeholder_value_that_utf8_cannot_carry_is_refused_not_crashed() -> None:
    pattern = TopicPattern.parse("t/{ApplicationId}/{DevEUI}")
    with pytest.raises(TopicValueError, match="UTF-8"):
        pattern.render({"ApplicationId": "\ud800", "DevEUI": DEV_EUI})
