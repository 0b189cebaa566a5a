"""Downlink documents: both forms, defaults from the connection, and every way a document can be refused."""

from __future__ import annotations

import base64

import orjson
import pytest

from bridge_container.downlink.documents import (
    MAX_PAYLOAD_BYTES,
    DownlinkRequest,
    correlation_id_of,
    parse_downlink,
)
from bridge_container.downlink.exceptions import DocumentError
from bridge_domain.topics import DOWNLINK_TOPIC_FIELDS, TopicPattern

PATTERN = TopicPattern.parse("tpx/things/{DevEUI}/downlink", allowed=DOWNLINK_TOPIC_FIELDS)
DEV_EUI = "70B3D57ED0000001"
TOPIC = f"tpx/things/{DEV_EUI}/downlink"
DEFAULT_PORT = 7


def parse(document: object, topic: str = TOPIC) -> DownlinkRequest:
    return parse_downlink(topic, orjson.dumps(document), pattern=PATTERN, default_port=DEFAULT_PORT)


def test_hex_payload_takes_the_connection_port_when_none_is_given() -> None:
    request = parse({"payload_hex": "01FF"})
    assert request == DownlinkRequest(dev_eui=DEV_EUI, f_port=DEFAULT_PORT, payload=b"\x01\xff")


def test_base64_payload_port_confirmed_and_correlation_id_are_read() -> None:
    request = parse(
        {"payload": base64.b64encode(b"\x10\x20").decode(), "FPort": 42, "confirmed": True, "correlationId": "order-17"}
    )
    assert (request.payload, request.f_port, request.confirmed, request.correlation_id) == (
        b"\x10\x20",
        42,
        True,
        "order-17",
    )


def test_the_devEUI_comes_from_the_topic_in_upper_case() -> None:
    request = parse({"payload_hex": "00"}, topic="tpx/things/70b3d57ed00000aa/downlink")
    assert request.dev_eui == "70B3D57ED00000AA"


def test_a_network_server_can_be_named() -> None:
    assert parse({"payload_hex": "00", "lns": "chirpstack"}).lns == "chirpstack"


def test_thingpark_form_is_accepted_with_its_string_values() -> None:
    request = parse(
        {
            "DevEUI_downlink": {
                "DevEUI": DEV_EUI.lower(),
                "FPort": "3",
                "payload_hex": "abcd",
                "Confirmed": "1",
                "CorrelationID": "4434704901C7450B",
                "AS_ID": "ignored",
                "AS_KEY": "ignored",
                "Time": "2019-07-10T15:38:46.882+02:00",
            }
        }
    )
    assert request == DownlinkRequest(
        DEV_EUI,
        3,
        b"\xab\xcd",
        confirmed=True,
        correlation_id="4434704901C7450B",
        thingpark_correlation_id="4434704901C7450B",
    )


def test_thingpark_form_without_port_takes_the_connection_port() -> None:
    assert parse({"DevEUI_downlink": {"payload_hex": "00"}}).f_port == DEFAULT_PORT


def test_an_empty_payload_is_allowed() -> None:
    assert parse({"payload_hex": ""}).payload == b""


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"FPort": 1}, "exactly one of payload_hex"),
        ({"payload_hex": "00", "payload": "AA=="}, "exactly one of payload_hex"),
        ({"payload_hex": "0g"}, "payload_hex"),
        ({"payload_hex": "123"}, "payload_hex"),
        ({"payload": "not base64!"}, "base64"),
        ({"payload_hex": "00", "FPort": 0}, "FPort"),
        ({"payload_hex": "00", "FPort": 224}, "FPort"),
        ({"payload_hex": "00", "fport": 2}, "fport"),
        ({"payload_hex": "00", "confirmed": "perhaps"}, "confirmed"),
        ({"payload_hex": "00", "lns": "loriot"}, "lns"),
        ({"payload_hex": "00" * (MAX_PAYLOAD_BYTES + 1)}, "at most"),
        ({"payload_hex": "00", "correlationId": "x" * 129}, "correlationId"),
        ([1, 2], "JSON object"),
        ({"DevEUI_downlink": {"DevEUI": "70B3D57ED0000002", "payload_hex": "00"}}, "differs"),
        ({"DevEUI_downlink": {"payload": {"DownMessageType": "SET"}}}, "driver"),
        ({"DevEUI_downlink": {"FPort": 1}}, "payload_hex is required"),
        ({"DevEUI_downlink": "00"}, "exactly one key"),
        ({"DevEUI_downlink": {"payload_hex": "00"}, "extra": 1}, "exactly one key"),
    ],
)
def test_invalid_documents_are_refused_with_the_reason(document: object, message: str) -> None:
    with pytest.raises(DocumentError, match=message):
        parse(document)


def test_malformed_json_is_refused() -> None:
    with pytest.raises(DocumentError, match="not valid JSON"):
        parse_downlink(TOPIC, b"{payload_hex", pattern=PATTERN, default_port=1)


@pytest.mark.parametrize("topic", ["tpx/things/NOTHEX0000000000/downlink", "tpx/things/70B3/downlink"])
def test_a_topic_devEUI_that_is_not_16_hex_digits_is_refused(topic: str) -> None:
    with pytest.raises(DocumentError, match="16 hexadecimal"):
        parse({"payload_hex": "00"}, topic=topic)


def test_a_topic_outside_the_pattern_is_refused() -> None:
    with pytest.raises(DocumentError, match="does not match"):
        parse({"payload_hex": "00"}, topic=f"tpx/things/{DEV_EUI}/uplink")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"payload_hex": "zz", "correlationId": "c-1"}', "c-1"),
        (b'{"DevEUI_downlink": {"CorrelationID": "4434704901C7450B", "payload": {}}}', "4434704901C7450B"),
        (b'{"payload_hex": "zz"}', None),
        (b"[]", None),
        (b"{not json", None),
    ],
)
def test_the_correlation_id_of_a_refused_document_is_still_found(body: bytes, expected: str | None) -> None:
    assert correlation_id_of(body) == expected


def test_validity_and_queue_item_id_are_read_from_the_bridge_form() -> None:
    item_id = "0B6F5A4E-6C1E-4A8E-9D57-1F0C0F6A2B3C"
    request = parse({"payload_hex": "01", "validUntil": "2026-12-02T20:00:00Z", "queueItemId": item_id})
    assert request.valid_until is not None
    assert request.valid_until.isoformat() == "2026-12-02T20:00:00+00:00"
    assert request.queue_item_id == "0b6f5a4e-6c1e-4a8e-9d57-1f0c0f6a2b3c"
    assert request.identity == "chirpstack:0b6f5a4e-6c1e-4a8e-9d57-1f0c0f6a2b3c"


def test_a_thingpark_correlation_id_names_the_downlink_and_its_validity_time_is_read() -> None:
    request = parse(
        {"DevEUI_downlink": {"payload_hex": "01", "CorrelationID": "ABC", "ValidityTime": "2026-12-02T20:00:00+02:00"}}
    )
    assert request.identity == "thingpark:ABC"
    assert request.valid_until is not None
    assert request.valid_until.utcoffset() is not None


def test_a_bridge_correlation_id_does_not_name_the_downlink() -> None:
    assert parse({"payload_hex": "01", "correlationId": "order-1"}).identity is None


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"payload_hex": "01", "queueItemId": "not-a-uuid"}, "queueItemId"),
        ({"payload_hex": "01", "validUntil": "tomorrow"}, "validUntil"),
        ({"payload_hex": "01", "validUntil": "2026-12-02T20:00:00"}, "validUntil"),
    ],
)
def test_a_bad_validity_or_queue_item_id_is_refused_by_name(document: dict[str, object], field: str) -> None:
    with pytest.raises(DocumentError, match=field):
        parse(document)
