"""The stand-in's MQTT framing: packet boundaries and the fields the rules read, in MQTT 3.1.1 and 5."""

from __future__ import annotations

import pytest

from devtools.iotcore import codec


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + codec.encode_varint(len(body)) + body


def string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


@pytest.mark.parametrize("value", [0, 127, 128, 16_383, 16_384, 2_097_151, 268_435_455])
def test_varints_round_trip(value: int) -> None:
    encoded = codec.encode_varint(value)
    assert codec.decode_varint(encoded, 0) == (value, len(encoded))


def test_a_packet_is_split_only_once_it_has_fully_arrived() -> None:
    data = packet(codec.PUBLISH, 0, string("t/1") + b"x" * 200)
    assert codec.split_packet(data[:2], 0) is None
    assert codec.split_packet(data[:-1], 0) is None
    assert codec.split_packet(data, 0) == (3, len(data))


def test_a_varint_of_five_bytes_is_malformed() -> None:
    with pytest.raises(codec.MalformedPacketError):
        codec.split_packet(b"\x30\xff\xff\xff\xff\x01", 0)


@pytest.mark.parametrize("level", [codec.MQTT_311, codec.MQTT_5])
def test_connect_gives_the_client_id_and_level(level: int) -> None:
    properties = b"\x05\x11\x00\x00\x0e\x10" if level == codec.MQTT_5 else b""  # session expiry 3600
    body = string("MQTT") + bytes([level, 0x02]) + (60).to_bytes(2, "big") + properties + string("bridge-1")
    assert codec.parse_connect(memoryview(body)) == codec.Connect(level, "bridge-1", 8)


def test_publish_5_gives_topic_qos_packet_id_payload_size_and_topic_alias() -> None:
    properties = b"\x23\x00\x07" + b"\x26" + string("k") + string("v")  # topic alias 7, a user property
    body = string("tpx/things/1/uplink") + (42).to_bytes(2, "big") + codec.encode_varint(len(properties))
    body += properties + b"p" * 300
    parsed = codec.parse_publish(0x32, memoryview(body), codec.MQTT_5)
    assert parsed == codec.Publish("tpx/things/1/uplink", 19, 1, 42, 300, 7)


def test_publish_311_qos0_has_no_packet_id() -> None:
    parsed = codec.parse_publish(0x30, memoryview(string("a/b") + b"xyz"), codec.MQTT_311)
    assert (parsed.topic, parsed.qos, parsed.packet_id, parsed.payload_bytes) == ("a/b", 0, None, 3)


@pytest.mark.parametrize("level", [codec.MQTT_311, codec.MQTT_5])
def test_subscribe_gives_its_filters(level: int) -> None:
    properties = b"\x00" if level == codec.MQTT_5 else b""
    body = (7).to_bytes(2, "big") + properties + string("a/+") + b"\x01" + string("$share/g/b/#") + b"\x00"
    assert codec.parse_subscription_filters(codec.SUBSCRIBE, memoryview(body), level) == (7, ["a/+", "$share/g/b/#"])


def test_the_stand_in_s_own_packets() -> None:
    assert codec.puback(5) == b"\x40\x02\x00\x05"
    assert codec.puback(5, codec.REASON_QUOTA_EXCEEDED) == b"\x40\x03\x00\x05\x97"
    assert codec.suback(9, [0x80, 0x80], codec.MQTT_311) == b"\x90\x04\x00\x09\x80\x80"
    assert codec.suback(9, [0x97], codec.MQTT_5) == b"\x90\x04\x00\x09\x00\x97"
    assert codec.disconnect(codec.MQTT_5, codec.REASON_SESSION_TAKEN_OVER) == b"\xe0\x01\x8e"
    assert codec.disconnect(codec.MQTT_311, codec.REASON_SESSION_TAKEN_OVER) == b""
    assert codec.connack_refused(codec.MQTT_311, 0x9F, 0x03) == b"\x20\x02\x00\x03"
