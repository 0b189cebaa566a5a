"""The local load balancer: connections go round-robin to the tasks, a refusing one is skipped, bytes pass both ways."""

from __future__ import annotations

import asyncio

import pytest

from devtools.balancer import RoundRobinBalancer
from devtools.ports import LOOPBACK, free_port


async def _named_server(name: bytes) -> asyncio.Server:
    """Answers each line with ``<name>:<line>``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(name + b":" + line)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, LOOPBACK, 0)


def _port(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


async def _ask(port: int, line: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    writer.write(line)
    await writer.drain()
    answer = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    await writer.wait_closed()
    return answer


def test_each_new_connection_goes_to_the_next_task_and_bytes_pass_both_ways() -> None:
    async def scenario() -> list[bytes]:
        servers = [await _named_server(name) for name in (b"a", b"b", b"c")]
        async with RoundRobinBalancer(free_port(), [_port(server) for server in servers]) as balancer:
            answers = [await _ask(balancer.port, b"ping %d\n" % number) for number in range(6)]
            assert list(balancer.connections_by_port.values()) == [2, 2, 2]
        for server in servers:
            server.close()
        return answers

    names = [b"a", b"b", b"c"] * 2
    assert asyncio.run(scenario()) == [b"%s:ping %d\n" % (name, number) for number, name in enumerate(names)]


def test_a_task_that_refuses_is_skipped() -> None:
    async def scenario() -> list[bytes]:
        live = await _named_server(b"live")
        async with RoundRobinBalancer(free_port(), [free_port(), _port(live)]) as balancer:
            answers = [await _ask(balancer.port, b"x\n") for _ in range(3)]
        live.close()
        return answers

    assert asyncio.run(scenario()) == [b"live:x\n"] * 3


def test_without_upstreams_it_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="upstream"):
        RoundRobinBalancer(free_port(), [])
