"""ThingPark's document, query and Token, checked directly: each refusal names its field, each bound at its edge."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any
from urllib.parse import quote, unquote

import pytest

from bridge_container.ingress import thingpark
from bridge_container.ingress.exceptions import BadUplinkError, InvalidFieldError, UnauthorizedError
from bridge_container.ingress.record import UplinkRecord

AS_KEY = "0123456789abcdef0123456789abcdef"
DEV_EUI = "70B3D57ED0000001"
NOW = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
DRIFT_SECS = 60.0
MESSAGE = {"CustomerID": "100000507", "DevEUI": DEV_EUI, "FPort": 2, "FCntUp": 7, "payload_hex": "0102"}


def token_of(
    message: dict[str, Any], query: str, fields: tuple[str, ...] = thingpark.SIGNED_FIELDS["DevEUI_uplink"]
) -> str:
    values = "".join(str(message.get(name, "")) for name in fields)
    return hashlib.sha256(f"{values}{query}{AS_KEY}".encode()).hexdigest()


def query_at(moment: dt.datetime | str, *, encode: bool = True) -> str:
    text = moment if isinstance(moment, str) else moment.isoformat()
    return f"LrnDevEui={DEV_EUI}&AS_ID=app&Time={quote(text) if encode else text}"


def verify(query: str, token: str | None = None, message: dict[str, Any] = MESSAGE) -> thingpark.SignedRequest:
    signed_token = token if token is not None else token_of(message, query)
    raw = f"{query}&Token={signed_token}".encode()
    return thingpark.verify_token("DevEUI_uplink", message, raw, AS_KEY, DRIFT_SECS, NOW)


def refused(query: str, token: str | None = None) -> UnauthorizedError:
    with pytest.raises(UnauthorizedError) as caught:
        verify(query, token)
    return caught.value


# --- the document -----------------------------------------------------------------------------------------------------
def test_every_field_of_an_uplink_reaches_the_record() -> None:
    uplink = {
        **MESSAGE,
        "DevEUI": DEV_EUI.lower(),
        "FPort": "2",
        "FCntUp": "7",
        "DevAddr": "0000abCD",
        "Time": "2026-05-01T12:00:00.000+02:00",
        "payload": {"temperature": 21.5},
        "LrrRSSI": -101.5,
        "LrrSNR": 7,
    }
    document = {"DevEUI_uplink": uplink}
    assert thingpark.parse_uplink(document, b"raw") == UplinkRecord(
        lns="thingpark",
        dev_eui=DEV_EUI,
        source=document,
        raw=b"raw",
        fport=2,
        fcnt_up=7,
        dev_addr="0000abCD",
        time="2026-05-01T12:00:00.000+02:00",
        payload_hex="0102",
        decoded={"temperature": 21.5},
        rssi=-101.5,
        snr=7.0,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("DevEUI", "70B3"), ("FPort", 0), ("FCntUp", -1), ("DevAddr", "0000"), ("Time", "noon"), ("payload_hex", "0")],
)
def test_an_invalid_uplink_field_is_named_by_its_path(field: str, value: object) -> None:
    with pytest.raises(InvalidFieldError) as caught:
        thingpark.parse_uplink({"DevEUI_uplink": {**MESSAGE, field: value}}, None)
    assert caught.value.field == f"DevEUI_uplink.{field}"


def test_a_payload_without_an_fport_is_named_by_the_fport() -> None:
    with pytest.raises(InvalidFieldError) as caught:
        thingpark.parse_uplink({"DevEUI_uplink": {"DevEUI": DEV_EUI, "payload_hex": "01"}}, None)
    assert (caught.value.field, caught.value.problem) == ("DevEUI_uplink.FPort", "a frame payload needs an FPort")


@pytest.mark.parametrize(
    ("document", "root"),
    [
        ({"DevEUI_downlink_Sent": {}, "DevEUI_uplink": {}}, "DevEUI_uplink"),  # the uplink wins wherever it is
        ({"other": 1, "DevEUI_downlink_Rejected": {}}, "DevEUI_downlink_Rejected"),
        ({"DevEUI_location": {}}, "DevEUI_location"),
    ],
)
def test_the_root_is_the_uplink_or_the_first_dev_eui_key(document: dict[str, Any], root: str) -> None:
    assert thingpark.root_of(document) == root


@pytest.mark.parametrize("document", [[], {"uplink": {}}, {}, "DevEUI_uplink"])
def test_a_document_without_a_thingpark_root_is_malformed(document: object) -> None:
    with pytest.raises(BadUplinkError) as caught:
        thingpark.root_of(document)
    assert (caught.value.reason, caught.value.message, caught.value.field) == (
        "malformed",
        'not a ThingPark document: expected {"DevEUI_uplink": {...}}',
        None,
    )


@pytest.mark.parametrize("inner", [[], "x", None, 5])
def test_a_root_that_is_not_an_object_is_malformed_and_named(inner: object) -> None:
    with pytest.raises(BadUplinkError) as caught:
        thingpark.inner_of({"DevEUI_downlink_Sent": inner}, "DevEUI_downlink_Sent")
    assert (caught.value.reason, caught.value.message, caught.value.field) == (
        "malformed",
        "DevEUI_downlink_Sent must be an object",
        "DevEUI_downlink_Sent",
    )


REPORT = {"DevEUI": DEV_EUI, "FCntDn": 4, "CorrelationID": "c1", "Time": "2026-05-01T12:00:00Z"}


def test_a_complete_report_is_accepted() -> None:
    thingpark.check_report("DevEUI_downlink_Sent", REPORT)
    thingpark.check_report("DevEUI_downlink_Sent", {"DevEUI": DEV_EUI})


@pytest.mark.parametrize(("field", "value"), [("DevEUI", None), ("FCntDn", -1), ("CorrelationID", 5), ("Time", "x")])
def test_an_invalid_report_field_is_named_by_its_path(field: str, value: object) -> None:
    with pytest.raises(InvalidFieldError) as caught:
        thingpark.check_report("DevEUI_downlink_Rejected", {**REPORT, field: value})
    assert caught.value.field == f"DevEUI_downlink_Rejected.{field}"


# --- the query --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "name", "expected"),
    [
        (b"a=1&b=2&b=3", b"b", "2"),  # the first one
        (b"b=2&a=1", b"b", "2"),
        (b"&b=2", b"b", "2"),  # after a separator at the very start
        (b"ab=1&b=2", b"b", "2"),  # a whole name, not its end
        (b"a=1&b=", b"b", ""),
        (b"a=1&ab=2", b"b", None),
        (b"", b"b", None),
        (b"t=2026-05-01T12%3A00%3A00%2B02%3A00&x=1", b"t", "2026-05-01T12:00:00+02:00"),
        (b"n=\xe9t\xe9", b"n", "été"),  # not UTF-8: read as Latin-1
    ],
)
def test_a_query_value_is_the_first_of_its_name_percent_decoded(query: bytes, name: bytes, expected: str) -> None:
    assert thingpark.query_value(query, name) == expected


def record() -> UplinkRecord:
    return UplinkRecord(lns="thingpark", dev_eui=DEV_EUI, source={})


@pytest.mark.parametrize(
    "query", [b"", b"AS_ID=app", f"LrnDevEui={DEV_EUI.lower()}".encode(), f"x=1&LrnDevEui={DEV_EUI}&y=2".encode()]
)
def test_lrn_dev_eui_absent_or_naming_the_device_is_accepted(query: bytes) -> None:
    thingpark.check_query_dev_eui(query, record())


def test_a_percent_encoded_lrn_dev_eui_naming_the_device_is_accepted() -> None:
    thingpark.check_query_dev_eui(b"LrnDevEui=%37%30b3d57ed0000001", record())


@pytest.mark.parametrize("query", [b"LrnDevEui=70B3D57ED0000002", b"LrnDevEui=", b"a=1&LrnDevEui=%37%31"])
def test_lrn_dev_eui_naming_another_device_is_refused(query: bytes) -> None:
    with pytest.raises(InvalidFieldError) as caught:
        thingpark.check_query_dev_eui(query, record())
    assert (caught.value.field, caught.value.problem, caught.value.reason) == (
        "LrnDevEui",
        "differs from DevEUI in the document",
        "invalid_deveui",
    )


# --- the Token --------------------------------------------------------------------------------------------------------
def test_the_expected_token_signs_the_values_in_thingparks_order_an_absent_one_as_nothing() -> None:
    report = {"DevEUI": DEV_EUI, "FCntDn": 4, "CustomerID": "1"}  # no FPort
    expected = hashlib.sha256(f"1{DEV_EUI}4q=1{AS_KEY}".encode()).hexdigest()
    assert thingpark.expected_token("DevEUI_downlink_Sent", report, "q=1", AS_KEY) == expected
    assert thingpark.expected_token("DevEUI_uplink", MESSAGE, "q=1", AS_KEY) == token_of(MESSAGE, "q=1")


def test_a_token_verifies_with_its_time_and_is_valid_until_the_drift_ends() -> None:
    query = query_at(NOW)
    signed = verify(query, token_of(MESSAGE, query).upper() + "&extra=1&more=2")
    assert signed == thingpark.SignedRequest(token_of(MESSAGE, query), NOW.timestamp(), NOW.timestamp() + DRIFT_SECS)


def test_a_token_signed_over_the_encoded_query_verifies_too() -> None:
    query = query_at(NOW)
    assert verify(query, token_of(MESSAGE, query)).token == token_of(MESSAGE, query)
    assert verify(query, token_of(MESSAGE, unquote(query))).token == token_of(MESSAGE, unquote(query))


def test_a_plus_sent_unencoded_arrives_as_a_space_and_is_read_as_a_plus() -> None:
    query = query_at("2026-05-01T14:00:00+02:00", encode=False).replace("+", " ")
    assert verify(query).expires_at == NOW.timestamp() + DRIFT_SECS


@pytest.mark.parametrize("offset_secs", [-DRIFT_SECS, DRIFT_SECS])
def test_a_time_exactly_the_drift_away_is_accepted(offset_secs: float) -> None:
    sent = NOW + dt.timedelta(seconds=offset_secs)
    assert verify(query_at(sent)).expires_at == sent.timestamp() + DRIFT_SECS


@pytest.mark.parametrize("offset_secs", [-DRIFT_SECS - 0.001, DRIFT_SECS + 0.001])
def test_a_time_past_the_drift_either_way_is_refused(offset_secs: float) -> None:
    error = refused(query_at(NOW + dt.timedelta(seconds=offset_secs)))
    assert (error.reason, error.message, error.field) == (
        "time_drift",
        "Time is more than 60s away from the bridge's clock",
        "Time",
    )


def test_a_query_without_a_token_is_refused_naming_it() -> None:
    with pytest.raises(UnauthorizedError) as caught:
        thingpark.verify_token("DevEUI_uplink", MESSAGE, query_at(NOW).encode(), AS_KEY, DRIFT_SECS, NOW)
    assert (caught.value.reason, caught.value.message, caught.value.field) == (
        "token_missing",
        "the query has no Token (ThingPark's AS key is configured)",
        "Token",
    )


MISMATCH = "the Token does not match the message and the AS key"
NO_ZONE = "Time has no time zone: ISO 8601 with Z or an offset is required"


@pytest.mark.parametrize(
    ("query", "token", "reason", "message", "field"),
    [
        (query_at(NOW), "0" * 64, "token_mismatch", MISMATCH, "Token"),
        (query_at(NOW), "0" * 63, "token_mismatch", MISMATCH, "Token"),
        ("LrnDevEui=x", None, "time_missing", "the query has no Time", "Time"),
        ("Time=noon", None, "time_invalid", "Time must be an ISO 8601 date and time", "Time"),
        ("Time=2026-05-01T12:00:00", None, "time_invalid", NO_ZONE, "Time"),
    ],
)
def test_each_refusal_says_why_and_names_the_parameter(
    query: str, token: str | None, reason: str, message: str, field: str
) -> None:
    error = refused(query, token)
    assert (error.reason, error.message, error.field) == (reason, message, field)


def test_a_token_of_another_message_or_key_is_refused() -> None:
    query = query_at(NOW)
    assert refused(query, token_of({**MESSAGE, "FCntUp": 8}, query)).reason == "token_mismatch"
    other_key = hashlib.sha256(f"{''.join(str(v) for v in MESSAGE.values())}{query}{'f' * 32}".encode()).hexdigest()
    assert refused(query, other_key).reason == "token_mismatch"


def test_only_the_query_before_the_first_token_is_signed() -> None:
    query = query_at(NOW)
    token = token_of(MESSAGE, query)
    assert verify(query, f"{token}&Token={'0' * 64}").token == token


def test_a_token_at_the_very_start_signs_an_empty_query() -> None:
    token = token_of(MESSAGE, "")
    with pytest.raises(UnauthorizedError) as caught:
        thingpark.verify_token("DevEUI_uplink", MESSAGE, f"&Token={token}".encode(), AS_KEY, DRIFT_SECS, NOW)
    assert caught.value.reason == "time_missing"  # the Token matched; there is no Time to check
