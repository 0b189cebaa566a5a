"""Just enough MQTT 3.1.1 / 5 framing for the stand-in: packet boundaries, the fields its rules read, its replies.

Nothing here re-encodes a packet it forwards: the proxy slices the original bytes. Parsing stops at what the rules
need (CONNECT's client ID and protocol level, PUBLISH's topic, QoS, packet ID and payload size, the topic filters of
SUBSCRIBE / UNSUBSCRIBE); the builders write the few packets the stand-in answers itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

CONNECT: Final = 1
CONNACK: Final = 2
PUBLISH: Final = 3
PUBACK: Final = 4
SUBSCRIBE: Final = 8
SUBACK: Final = 9
UNSUBSCRIBE: Final = 10
UNSUBACK: Final = 11
DISCONNECT: Final = 14

MQTT_311: Final = 4  # protocol level byte of CONNECT
MQTT_5: Final = 5

MAX_VARINT_BYTES: Final = 4
TOPIC_ALIAS_PROPERTY: Final = 0x23

# MQTT 5 reason codes the stand-in sends (OASIS MQTT 5.0, section 2.4).
REASON_NOT_AUTHORIZED: Final = 0x87
REASON_SESSION_TAKEN_OVER: Final = 0x8E
REASON_TOPIC_NAME_INVALID: Final = 0x90
REASON_PACKET_TOO_LARGE: Final = 0x95
REASON_QUOTA_EXCEEDED: Final = 0x97
REASON_CONNECTION_RATE_EXCEEDED: Final = 0x9F
REASON_CLIENT_ID_NOT_VALID: Final = 0x85
# MQTT 3.1.1 CONNACK return codes and the SUBACK failure code.
RETURN_IDENTIFIER_REJECTED: Final = 0x02
RETURN_SERVER_UNAVAILABLE: Final = 0x03
SUBACK_FAILURE_311: Final = 0x80


class MalformedPacketError(ValueError):
    """The bytes are not an MQTT packet the stand-in can read."""


# --- framing ---------------------------------------------------------------------------------------------------
def encode_varint(value: int) -> bytes:
    """MQTT's variable byte integer (remaining length, property length)."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def decode_varint(data: bytes | bytearray | memoryview, offset: int) -> tuple[int, int] | None:
    """``(value, offset after it)``, or None when ``data`` ends inside the integer."""
    value, shift = 0, 0
    for index in range(offset, min(offset + MAX_VARINT_BYTES, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    if len(data) - offset >= MAX_VARINT_BYTES:
        raise MalformedPacketError("variable byte integer longer than 4 bytes")
    return None


def split_packet(data: bytes | bytearray | memoryview, offset: int) -> tuple[int, int] | None:
    """``(body start, packet end)`` of the packet at ``offset``, or None when it has not fully arrived."""
    if len(data) - offset < 2:
        return None
    decoded = decode_varint(data, offset + 1)
    if decoded is None:
        return None
    remaining, body = decoded
    end = body + remaining
    return (body, end) if end <= len(data) else None


def _string(body: memoryview, offset: int) -> tuple[bytes, int]:
    if offset + 2 > len(body):
        raise MalformedPacketError("string length beyond the packet")
    length = int.from_bytes(body[offset : offset + 2], "big")
    end = offset + 2 + length
    if end > len(body):
        raise MalformedPacketError("string beyond the packet")
    return bytes(body[offset + 2 : end]), end


def _properties(body: memoryview, offset: int) -> tuple[memoryview, int]:
    decoded = decode_varint(body, offset)
    if decoded is None:
        raise MalformedPacketError("property length beyond the packet")
    length, start = decoded
    if start + length > len(body):
        raise MalformedPacketError("properties beyond the packet")
    return body[start : start + length], start + length


# Property identifier → encoded size kind (OASIS MQTT 5.0, section 2.2.2.2); enough to walk a PUBLISH's properties.
_BYTE, _TWO, _FOUR, _VARINT, _STRING, _PAIR = range(6)
_PROPERTY_KINDS: Final = {
    0x01: _BYTE, 0x02: _FOUR, 0x03: _STRING, 0x08: _STRING, 0x09: _STRING, 0x0B: _VARINT,
    0x23: _TWO, 0x26: _PAIR,
}  # fmt: skip


def _topic_alias(properties: memoryview) -> int | None:
    offset = 0
    while offset < len(properties):
        identifier = properties[offset]
        offset += 1
        kind = _PROPERTY_KINDS.get(identifier)
        if kind is None:
            raise MalformedPacketError(f"unexpected PUBLISH property 0x{identifier:02x}")
        if identifier == TOPIC_ALIAS_PROPERTY:
            return int.from_bytes(properties[offset : offset + 2], "big")
        if kind == _BYTE:
            offset += 1
        elif kind == _TWO:
            offset += 2
        elif kind == _FOUR:
            offset += 4
        elif kind == _VARINT:
            decoded = decode_varint(properties, offset)
            if decoded is None:
                raise MalformedPacketError("truncated property")
            offset = decoded[1]
        else:
            _, offset = _string(properties, offset)
            if kind == _PAIR:
                _, offset = _string(properties, offset)
    return None


# --- the packets the rules read --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Connect:
    protocol_level: int
    client_id: str
    client_id_bytes: int


def parse_connect(body: memoryview) -> Connect:
    name, offset = _string(body, 0)
    if name not in (b"MQTT", b"MQIsdp") or offset + 4 > len(body):
        raise MalformedPacketError("not an MQTT CONNECT")
    level = body[offset]
    offset += 4  # level, flags, keep alive
    if level == MQTT_5:
        _, offset = _properties(body, offset)
    client_id, _ = _string(body, offset)
    return Connect(level, client_id.decode("utf-8", "replace"), len(client_id))


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str  # empty when an MQTT 5 topic alias stands for it
    topic_bytes: int
    qos: int
    packet_id: int | None
    payload_bytes: int
    topic_alias: int | None


def parse_publish(first_byte: int, body: memoryview, protocol_level: int) -> Publish:
    topic, offset = _string(body, 0)
    qos = (first_byte >> 1) & 0x03
    packet_id = None
    if qos:
        if offset + 2 > len(body):
            raise MalformedPacketError("PUBLISH without its packet identifier")
        packet_id = int.from_bytes(body[offset : offset + 2], "big")
        offset += 2
    alias = None
    if protocol_level == MQTT_5:
        properties, offset = _properties(body, offset)
        if len(properties):
            alias = _topic_alias(properties)
    return Publish(topic.decode("utf-8", "replace"), len(topic), qos, packet_id, len(body) - offset, alias)


def parse_subscription_filters(packet_type: int, body: memoryview, protocol_level: int) -> tuple[int, list[str]]:
    """``(packet identifier, topic filters)`` of a SUBSCRIBE or UNSUBSCRIBE."""
    if len(body) < 2:
        raise MalformedPacketError("no packet identifier")
    packet_id = int.from_bytes(body[0:2], "big")
    offset = 2
    if protocol_level == MQTT_5:
        _, offset = _properties(body, offset)
    filters = []
    while offset < len(body):
        topic_filter, offset = _string(body, offset)
        filters.append(topic_filter.decode("utf-8", "replace"))
        if packet_type == SUBSCRIBE:
            offset += 1  # subscription options
    return packet_id, filters


# --- what the stand-in sends itself ----------------------------------------------------------------------------
def _packet(packet_type: int, flags: int, body: bytes) -> bytes:
    return bytes([packet_type << 4 | flags]) + encode_varint(len(body)) + body


def puback(packet_id: int, reason: int | None = None) -> bytes:
    """A PUBACK; ``reason`` (MQTT 5 only) is the reason code, omitted means success."""
    body = packet_id.to_bytes(2, "big") + (bytes([reason]) if reason is not None else b"")
    return _packet(PUBACK, 0, body)


def suback(packet_id: int, codes: list[int], protocol_level: int) -> bytes:
    properties = b"\x00" if protocol_level == MQTT_5 else b""
    return _packet(SUBACK, 0, packet_id.to_bytes(2, "big") + properties + bytes(codes))


def connack_refused(protocol_level: int, reason_5: int, return_code_311: int) -> bytes:
    if protocol_level == MQTT_5:
        return _packet(CONNACK, 0, bytes([0, reason_5, 0]))
    return _packet(CONNACK, 0, bytes([0, return_code_311]))


def disconnect(protocol_level: int, reason: int) -> bytes:
    """A server DISCONNECT with ``reason`` (MQTT 5); MQTT 3.1.1 has none (the server just closes): empty."""
    return _packet(DISCONNECT, 0, bytes([reason])) if protocol_level == MQTT_5 else b""
