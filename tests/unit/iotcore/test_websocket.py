"""MQTT over WebSockets at the stand-in: the upgrade, masked client frames, ping and close."""

from __future__ import annotations

import os

import pytest

from devtools.iotcore.websocket import OP_BINARY, OP_CLOSE, OP_PING, WebSocketError, WebSocketServer, frame

UPGRADE = (
    b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def client_frame(payload: bytes, opcode: int = OP_BINARY, *, final: bool = True) -> bytes:
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    length = len(payload)
    head = bytes([(0x80 if final else 0) | opcode])
    if length < 126:
        head += bytes([0x80 | length])
    else:
        head += bytes([0x80 | 126]) + length.to_bytes(2, "big")
    return head + mask + masked


def test_the_upgrade_is_answered_with_the_rfc_accept_key_and_mqtt() -> None:
    received = WebSocketServer().feed(UPGRADE)
    [answer] = received.replies
    assert answer.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in answer  # RFC 6455's own example
    assert b"Sec-WebSocket-Protocol: mqtt" in answer


def test_masked_frames_split_anywhere_give_back_the_mqtt_stream() -> None:
    server = WebSocketServer()
    server.feed(UPGRADE)
    stream = client_frame(b"\x10" + b"a" * 200, final=False) + client_frame(b"b" * 3, 0x0)
    data = b"".join(server.feed(stream[index : index + 7]).data for index in range(0, len(stream), 7))
    assert data == b"\x10" + b"a" * 200 + b"bbb"


def test_ping_is_answered_and_close_is_echoed() -> None:
    server = WebSocketServer()
    server.feed(UPGRADE)
    received = server.feed(client_frame(b"hi", OP_PING) + client_frame(b"\x03\xe8", OP_CLOSE))
    assert received.replies == [frame(b"hi", 0xA), frame(b"\x03\xe8", OP_CLOSE)]
    assert received.closed


def test_an_unmasked_client_frame_is_refused() -> None:
    server = WebSocketServer()
    server.feed(UPGRADE)
    with pytest.raises(WebSocketError):
        server.feed(frame(b"x"))


def test_a_request_that_is_no_upgrade_gets_400() -> None:
    received = WebSocketServer().feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert received.closed
    assert received.replies[0].startswith(b"HTTP/1.1 400 ")
