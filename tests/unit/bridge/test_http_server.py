"""The coalescing transport: writes of one loop iteration reach the socket as one, and a close flushes first."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bridge_container.http_server import _CoalescingTransport


@dataclass
class RecordingTransport:
    writes: list[bytes] = field(default_factory=list)
    closed: bool = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def test_writes_of_one_iteration_become_one_socket_write() -> None:
    real = RecordingTransport()
    transport = _CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 202 Accepted\r\n\r\n")
    transport.write(b'{"accepted":1}')
    assert real.writes == []
    await asyncio.sleep(0)
    assert real.writes == [b'HTTP/1.1 202 Accepted\r\n\r\n{"accepted":1}']


async def test_close_flushes_pending_writes_first() -> None:
    real = RecordingTransport()
    transport = _CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    transport.close()
    await asyncio.sleep(0)
    assert (real.writes, real.closed) == ([b"HTTP/1.1 400 Bad Request\r\n\r\n"], True)
    assert transport.get_extra_info("peername") == "info:peername"
