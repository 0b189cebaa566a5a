"""The HTTP server: one socket write per response, and uvicorn's non-public parts used only behind one guard."""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from bridge_container import http_server
from bridge_container.http_server import _CoalescingTransport
from devtools.ports import free_port

REQUIREMENTS = Path(__file__).parents[3] / "requirements.txt"
LOOPBACK = "127.0.0.1"
SERVER_STOP_TIMEOUT_SECS = 5.0


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


# --- the version guard around uvicorn's non-public parts -----------------------------------------------------------


def test_installed_uvicorn_is_the_release_the_overrides_were_written_for() -> None:
    # Fails loudly on an uvicorn upgrade: re-check connection_made and capture_signals, then move the pin and the guard.
    installed = importlib.metadata.version("uvicorn")
    assert installed == uvicorn.__version__ == http_server.WRITTEN_FOR_UVICORN_VERSION, (
        f"uvicorn {installed} is installed but bridge_container/http_server.py was written for "
        f"{http_server.WRITTEN_FOR_UVICORN_VERSION}"
    )


def test_requirements_pin_the_release_the_overrides_were_written_for() -> None:
    pins = re.findall(r"^uvicorn==(\S+)$", REQUIREMENTS.read_text(), flags=re.MULTILINE)
    assert pins == [http_server.WRITTEN_FOR_UVICORN_VERSION]


def test_guard_refuses_another_uvicorn_release() -> None:
    server = http_server.http_server(hello_app, host=LOOPBACK, port=0, version="0.99.0")

    assert not http_server.uses_uvicorn_internals("0.99.0")
    assert server.config.http == http_server.PUBLIC_HTTP_PROTOCOL
    assert type(server) is uvicorn.Server


def test_guard_takes_the_overrides_with_the_pinned_release() -> None:
    server = http_server.http_server(hello_app, host=LOOPBACK, port=0)

    assert http_server.uses_uvicorn_internals()
    assert isinstance(server.config.http, type)
    assert type(server) is not uvicorn.Server


def test_only_the_http_server_module_reaches_into_uvicorn() -> None:
    root = Path(http_server.__file__).parent
    importers = sorted(
        str(path.relative_to(root.parent))
        for path in root.rglob("*.py")
        if re.search(r"^\s*(import|from)\s+uvicorn\.|capture_signals", path.read_text(), flags=re.MULTILINE)
    )
    assert importers == ["bridge_container/http_server.py"]


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app answering every request with 202 and the request body."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 202, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"got " + body})


@pytest.mark.parametrize("version", [None, "0.99.0"], ids=["pinned-release", "fallback"])
async def test_server_answers_requests_on_one_keep_alive_connection(version: str | None) -> None:
    port = free_port()
    server = http_server.http_server(hello_app, host=LOOPBACK, port=port, version=version)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "the server stopped while starting"
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{port}") as client:
            answers = [await client.post("/uplinks", content=f"uplink {n}".encode()) for n in range(3)]
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, SERVER_STOP_TIMEOUT_SECS)

    assert [(answer.status_code, answer.text) for answer in answers] == [(202, f"got uplink {n}") for n in range(3)]
