"""A lean HTTP/1.1 client for load on loopback: keep-alive connections, one request in flight on each.

An HTTP client library costs a few hundred microseconds of CPU per request, more than the bridge itself spends;
on a 2-core machine the simulated LNS would then be what limits the rate. Raw asyncio protocols cost a few tens.
Connections the server closed (idle keep-alive timeout) are reopened on their next use.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import cast

TRANSPORT_FAILED = 0  # the status reported when the connection failed before an answer


def post_request(target: str, body: bytes, headers: Mapping[str, str], host: str = "127.0.0.1") -> bytes:
    """The bytes of ``POST target`` (path and query) with ``body`` and ``headers``."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head = f"POST {target} HTTP/1.1\r\nHost: {host}\r\n{lines}Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


class KeepAliveConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with one request in flight (no pipelining, like an LNS)."""

    def __init__(self, on_free: Callable[[KeepAliveConnection], None]) -> None:
        self._on_free = on_free
        self._buffer = b""
        self._done: Callable[[int], None] | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        done, self._done = self._done, None
        if done is not None:  # the request in flight will never be answered on this connection
            done(TRANSPORT_FAILED)
            self._on_free(self)

    def send(self, request: bytes, done: Callable[[int], None]) -> None:
        assert self.transport is not None
        self._done = done
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self._buffer[:head_end].lower()
        marker = head.find(b"content-length:")
        length = int(head[marker + 15 :].split(b"\r\n", 1)[0]) if marker >= 0 else 0
        if len(self._buffer) < head_end + 4 + length:
            return
        status = int(self._buffer[9:12])
        self._buffer = self._buffer[head_end + 4 + length :]
        done, self._done = self._done, None
        if done is not None:
            done(status)
        self._on_free(self)


class HttpLoad:
    """``connections`` keep-alive connections to ``host:port``; a request waits for a free one."""

    def __init__(self, host: str, port: int, connections: int = 16) -> None:
        self.host = host
        self.port = port
        self.size = connections
        self._free: asyncio.Queue[KeepAliveConnection | None] = asyncio.Queue()
        self._open: set[KeepAliveConnection] = set()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def __aenter__(self) -> HttpLoad:
        for _ in range(self.size):
            self._free.put_nowait(None)  # opened on first use
        return self

    async def __aexit__(self, *exc: object) -> None:
        for connection in self._open:
            if connection.transport is not None:
                connection.transport.close()
        self._open.clear()

    async def _connect(self) -> KeepAliveConnection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            lambda: KeepAliveConnection(self._free.put_nowait), self.host, self.port
        )
        self._open.add(connection)
        return connection

    async def request(self, request: bytes, done: Callable[[int], None]) -> None:
        """Send ``request`` on a free connection; ``done(status)`` runs with the answer (0: transport failure)."""
        self._in_flight += 1
        self._idle.clear()

        def answered(status: int) -> None:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
            done(status)

        connection = await self._free.get()
        if connection is None or connection.closed:
            if connection is not None:
                self._open.discard(connection)
            try:
                connection = await self._connect()
            except OSError:
                self._free.put_nowait(None)
                answered(TRANSPORT_FAILED)
                return
        connection.send(request, answered)

    async def idle(self, timeout_secs: float) -> bool:
        """Wait until no request is in flight (True), or the timeout (False)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_secs)
            return True
        return False
