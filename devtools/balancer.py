"""A local load balancer for several bridge tasks: each accepted TCP connection goes to the next task, round-robin.

It balances connections (as an NLB does), not requests (as the deployment's ALB does): the simulated LNSs keep
several keep-alive connections open, so every task receives a share of the uplinks. A task that refuses the
connection is skipped for that connection; when every task refuses, the client's connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Final

from devtools.ports import LOOPBACK

logger = logging.getLogger(__name__)

CHUNK_BYTES: Final = 64 * 1024
CONNECT_TIMEOUT_SECS: Final = 2.0


class RoundRobinBalancer:
    """Listens on ``port`` and pipes each connection to one of ``upstream_ports``; an async context manager."""

    def __init__(self, port: int, upstream_ports: Sequence[int], host: str = LOOPBACK) -> None:
        if not upstream_ports:
            raise ValueError("at least one upstream port")
        self.host = host
        self.port = port
        self.upstream_ports = list(upstream_ports)
        self.connections_by_port: dict[int, int] = dict.fromkeys(self.upstream_ports, 0)
        self._next = itertools.cycle(range(len(self.upstream_ports)))
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> RoundRobinBalancer:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()
        if self._pipes:
            await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in self.upstream_ports:
            port = self.upstream_ports[next(self._next)]
            try:
                opened = await asyncio.wait_for(asyncio.open_connection(self.host, port), CONNECT_TIMEOUT_SECS)
            except (OSError, TimeoutError):
                logger.warning("task on port %d refused a connection; trying the next", port)
                continue
            self.connections_by_port[port] += 1
            return opened
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect_upstream()
        if upstream is None:
            writer.close()
            return
        upstream_reader, upstream_writer = upstream
        loop = asyncio.get_running_loop()
        pipes = [
            loop.create_task(self._pipe(reader, upstream_writer)),
            loop.create_task(self._pipe(upstream_reader, writer)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._pipes.difference_update(pipes)
            for side in (writer, upstream_writer):
                side.close()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(CHUNK_BYTES):
                target.write(data)
                await target.drain()
            if target.can_write_eof():
                target.write_eof()
