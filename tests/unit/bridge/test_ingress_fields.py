"""The field checks at the door, each at the exact edge of what LoRaWAN and the LNS formats allow."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from bridge_container.ingress import fields
from bridge_container.ingress.exceptions import InvalidFieldError

FIELD = "DevEUI_uplink.X"


def refusal(check: Callable[[object, str], object], value: object) -> InvalidFieldError:
    with pytest.raises(InvalidFieldError) as caught:
        check(value, FIELD)
    assert caught.value.field == FIELD
    assert caught.value.message == f"{FIELD}: {caught.value.problem}"
    return caught.value


# --- DevEUI and DevAddr -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [("70b3d57ed0000001", "70B3D57ED0000001"), ("FFFFFFFFFFFFFFFF",) * 2])
def test_a_dev_eui_of_16_hex_digits_is_taken_in_upper_case(value: str, expected: str) -> None:
    assert fields.dev_eui(value, FIELD) == expected


@pytest.mark.parametrize("value", ["70B3D57ED000000", "70B3D57ED00000011", "70B3D57ED000000G", None, 7])
def test_any_other_dev_eui_is_refused_as_invalid_deveui(value: object) -> None:
    error = refusal(fields.dev_eui, value)
    assert (error.reason, error.problem) == ("invalid_deveui", "must be 16 hexadecimal digits")


@pytest.mark.parametrize("value", ["0000abCD", "FFFFFFFF", None])
def test_a_dev_addr_of_8_hex_digits_is_kept_as_written(value: str | None) -> None:
    assert fields.dev_addr(value, FIELD) == value


@pytest.mark.parametrize("value", ["0000ABC", "0000ABCDE", "0000ABCG", "", 12345678])
def test_any_other_dev_addr_is_refused(value: object) -> None:
    error = refusal(fields.dev_addr, value)
    assert (error.reason, error.problem) == ("invalid_field", "must be 8 hexadecimal digits")


# --- frame counters and FPorts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (2**32 - 1, 2**32 - 1), ("0", 0), ("4294967295", 2**32 - 1), ("0000000001", 1), (None, None)],
)
def test_a_frame_counter_from_0_to_2_32_minus_1_is_taken_as_number_or_digits(value: object, expected: int) -> None:
    assert fields.frame_counter(value, FIELD) == expected


@pytest.mark.parametrize(
    "value", [-1, 2**32, "4294967296", "00000000001", "", "-1", "1.0", "١", True, 1.0, [1], "+1", " 1"]
)
def test_any_other_frame_counter_is_refused_naming_the_range(value: object) -> None:
    assert refusal(fields.frame_counter, value).problem == "must be an integer between 0 and 4294967295"


@pytest.mark.parametrize(("value", "expected"), [(1, 1), (223, 223), ("1", 1), ("223", 223), (None, None)])
def test_an_application_fport_from_1_to_223_is_taken(value: object, expected: int | None) -> None:
    assert fields.fport(value, FIELD) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0, "FPort 0 carries MAC commands only, never application data"),
        ("0", "FPort 0 carries MAC commands only, never application data"),
        (224, "FPort 224 is reserved for the LoRaWAN MAC layer test protocol"),
        (225, "FPorts 225-255 are reserved by LoRaWAN"),
        (255, "FPorts 225-255 are reserved by LoRaWAN"),
        (256, "must be an application FPort between 1 and 223"),
        (-1, "must be an application FPort between 1 and 223"),
        ("256", "must be an integer between 0 and 255"),
        ("x", "must be an integer between 0 and 255"),
        (True, "must be an integer between 0 and 255"),
    ],
)
def test_every_other_fport_is_refused_saying_what_it_is_for(value: object, problem: str) -> None:
    assert refusal(fields.fport, value).problem == problem


# --- payloads ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["", "00", "0aFf", None])
def test_a_hex_payload_of_whole_bytes_is_kept_as_written(value: str | None) -> None:
    assert fields.hex_payload(value, FIELD) == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [("0", "odd number of hex digits"), ("abc", "odd number of hex digits"), ("0g", "must be hexadecimal digits")],
)
def test_a_hex_payload_of_half_a_byte_or_other_characters_is_refused(value: object, problem: str) -> None:
    assert refusal(fields.hex_payload, value).problem == problem


def test_a_hex_payload_that_is_not_a_string_is_refused() -> None:
    assert refusal(fields.hex_payload, 12).problem == "must be hexadecimal digits"


@pytest.mark.parametrize(("value", "expected"), [("AQI=", "0102"), ("", ""), (None, None)])
def test_a_base64_payload_is_returned_as_hex(value: str | None, expected: str | None) -> None:
    assert fields.base64_payload(value, FIELD) == expected


@pytest.mark.parametrize(
    ("value", "problem"), [("AQI", "not valid base64"), ("AQ-=", "not valid base64"), (5, "must be a base64 string")]
)
def test_a_base64_payload_unpadded_or_of_another_alphabet_is_refused(value: object, problem: str) -> None:
    assert refusal(fields.base64_payload, value).problem == problem


def test_a_payload_needs_an_fport_and_an_empty_one_does_not() -> None:
    fields.require_port_for_payload(None, "", FIELD)
    fields.require_port_for_payload(None, None, FIELD)
    fields.require_port_for_payload(1, "00", FIELD)
    with pytest.raises(InvalidFieldError) as caught:
        fields.require_port_for_payload(None, "00", FIELD)
    assert (caught.value.field, caught.value.problem) == (FIELD, "a frame payload needs an FPort")


# --- times ------------------------------------------------------------------------------------------------------------
def time_of(length: int) -> str:
    """A valid time of ``length`` characters: Python reads any number of fraction digits."""
    return "2026-03-01T10:00:00." + "1" * (length - 26) + "+00:00"


@pytest.mark.parametrize("value", ["2026-03-01T10:00:00Z", "2026-03-01T10:00:00.123+02:00", None])
def test_a_time_with_a_zone_is_kept_as_written(value: str | None) -> None:
    assert fields.timestamp(value, FIELD) == value


def test_a_time_is_parsed_to_an_aware_moment() -> None:
    moment = fields.parse_timestamp("2026-03-01T10:00:00+02:00", FIELD)
    assert moment == dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2026-03-01T10:00:00", "has no time zone: ISO 8601 with Z or an offset is required"),
        ("yesterday", "must be an ISO 8601 date and time"),
        ("", "must be an ISO 8601 date and time"),
        (1767225600, "must be an ISO 8601 date and time"),
    ],
)
def test_a_time_without_a_zone_too_long_or_not_a_date_is_refused(value: object, problem: str) -> None:
    assert refusal(fields.timestamp, value).problem == problem


def test_a_time_of_64_characters_is_read_and_one_of_65_refused_unread() -> None:
    assert fields.parse_timestamp(time_of(64), FIELD) == dt.datetime(2026, 3, 1, 10, 0, 0, 111111, tzinfo=dt.UTC)
    assert dt.datetime.fromisoformat(time_of(65))  # valid, but longer than any LNS sends
    assert refusal(fields.timestamp, time_of(65)).problem == "must be an ISO 8601 date and time"


# --- informative fields -----------------------------------------------------------------------------------------------
def test_optional_text_is_a_string_or_absent() -> None:
    assert fields.optional_str("abc", FIELD) == "abc"
    assert fields.optional_str(None, FIELD) is None
    assert refusal(fields.optional_str, 5).problem == "must be a string"


@pytest.mark.parametrize(
    ("value", "expected"), [([{"a": 1}, {"b": 2}], {"a": 1}), ([], {}), ([1], {}), ({"a": 1}, {}), (None, {})]
)
def test_the_first_radio_metadata_object_or_nothing(value: object, expected: dict[str, int]) -> None:
    assert fields.first_object(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(-120, -120.0), (7.5, 7.5), (True, None), ("-120", None), (None, None)]
)
def test_radio_metadata_is_a_number_or_nothing(value: object, expected: float | None) -> None:
    assert fields.optional_float(value) == expected


@pytest.mark.parametrize("value", ["--5", "-", "", "٣", "7.0", 32, -33, True, 1.5, "100"])
def test_a_link_margin_outside_lorawans_six_bits_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidFieldError) as refused:
        fields.link_margin(value, "DevEUI_notification.Var2")
    assert refused.value.field == "DevEUI_notification.Var2"


@pytest.mark.parametrize(("value", "margin"), [("-32", -32), ("7", 7), (31, 31), (0, 0)])
def test_a_link_margin_is_read_as_an_integer(value: object, margin: int) -> None:
    assert fields.link_margin(value, "margin") == margin
