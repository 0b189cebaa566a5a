"""The server side of MQTT over WebSockets (RFC 6455) as IoT Core's port 443 speaks it: handshake and framing.

The stand-in ends the WebSocket itself and forwards the MQTT byte stream to the broker's plain listener, so the same
MQTT rules apply on both listeners and nothing has to be re-framed. MQTT packets may span frames (the stream is what
counts, not the frame boundaries). Client frames are masked; server frames are not.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Final

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HANDSHAKE_BYTES: Final = 16 * 1024
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WebSocketError(ValueError):
    """Not a WebSocket upgrade, or a frame this server does not accept."""


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())  # noqa: S324 - SHA-1 is what RFC 6455 specifies


def frame(payload: bytes, opcode: int = OP_BINARY) -> bytes:
    """One unmasked, final server frame."""
    length = len(payload)
    if length < 126:
        header = bytes([0x80 | opcode, length])
    elif length < 1 << 16:
        header = bytes([0x80 | opcode, 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 127]) + length.to_bytes(8, "big")
    return header + payload


def _unmask(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return payload
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


@dataclass(slots=True)
class Received:
    """What one chunk of client bytes yields: MQTT bytes, bytes to send back, and whether the client closed."""

    data: bytes = b""
    replies: list[bytes] = field(default_factory=list)
    closed: bool = False


class WebSocketServer:
    """Feed it the client's bytes (after TLS); it answers the upgrade and unwraps frames into MQTT bytes."""

    def __init__(self) -> None:
        self.upgraded = False
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Received:
        self._buffer += data
        received = Received()
        if not self.upgraded and not self._handshake(received):
            return received
        chunks: list[bytes] = []
        while not received.closed:
            parsed = self._next_frame()
            if parsed is None:
                break
            opcode, payload = parsed
            if opcode in (OP_BINARY, OP_CONTINUATION, OP_TEXT):
                chunks.append(payload)
            elif opcode == OP_PING:
                received.replies.append(frame(payload, OP_PONG))
            elif opcode == OP_CLOSE:
                received.replies.append(frame(payload[:2], OP_CLOSE))
                received.closed = True
        received.data = b"".join(chunks)
        return received

    def _handshake(self, received: Received) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HANDSHAKE_BYTES:
                raise WebSocketError("no end of the HTTP upgrade request")
            return False
        request = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        headers = {}
        for line in request[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key")
        if not request[0].startswith("GET ") or headers.get("upgrade", "").lower() != "websocket" or not key:
            received.replies.append(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            received.closed = True
            return False
        protocols = [item.strip() for item in headers.get("sec-websocket-protocol", "").split(",")]
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept_key(key.encode()).decode()}",
        ]
        if "mqtt" in protocols:
            lines.append("Sec-WebSocket-Protocol: mqtt")
        received.replies.append(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.upgraded = True
        return True

    def _next_frame(self) -> tuple[int, bytes] | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        opcode, masked, length = buffer[0] & 0x0F, buffer[1] & 0x80, buffer[1] & 0x7F
        offset = 2
        if length == 126:
            if len(buffer) < 4:
                return None
            length, offset = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            length, offset = int.from_bytes(buffer[2:10], "big"), 10
        if not masked:
            raise WebSocketError("client frames must be masked")
        end = offset + 4 + length
        if len(buffer) < end:
            return None
        mask = bytes(buffer[offset : offset + 4])
        payload = _unmask(bytes(buffer[offset + 4 : end]), mask)
        del buffer[:end]
        return opcode, payload
