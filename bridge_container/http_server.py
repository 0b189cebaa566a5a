"""The bridge's uvicorn server; the only module that uses parts of uvicorn outside its public API, behind one guard.

Two departures, both measured or needed, and both used only with the uvicorn release they were written for (pinned
in requirements.txt, checked by tests/unit/bridge/test_http_server.py); :func:`http_server` is the one guarded place:

- **One socket write per response.** uvicorn writes the status line and headers at ``http.response.start`` and the
  body at ``http.response.body``: two socket writes, and on loopback or a busy host two wake-ups of the peer, for
  every 202. A subclass of uvicorn's httptools protocol (not public API) joins the writes made during one event-loop
  iteration and writes them at the start of the next one (profiled: the second write was a fifth of the ingress CPU
  at 1000 requests/s). A close flushes first, so nothing written is lost.
- **The signals stay with the service.** ``Server.serve()`` installs uvicorn's own SIGINT/SIGTERM handlers, which
  close the listener at once; the service needs the server to keep answering (503) while the connections drain.
  uvicorn has no option for this, so ``Server.capture_signals`` is overridden to install nothing.

With any other uvicorn release the server uses uvicorn's public ``httptools`` protocol (two writes per response)
and uvicorn's own signal handling next to the service's: on SIGTERM the buffer still drains, but uvicorn closes the
listener at once, so requests during the drain are refused instead of answered 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, Final

import uvicorn

# The release whose HttpToolsProtocol.connection_made and Server.capture_signals the overrides below were written
# against. Any other version uses the public API only.
WRITTEN_FOR_UVICORN_VERSION: Final = "0.54.0"
PUBLIC_HTTP_PROTOCOL: Final = "httptools"


def uses_uvicorn_internals(version: str | None = None) -> bool:
    """The guard: True only for the uvicorn release the overrides of this module were written for."""
    return (version or uvicorn.__version__) == WRITTEN_FOR_UVICORN_VERSION


def http_server(app: Callable[..., Any], *, host: str, port: int, version: str | None = None) -> uvicorn.Server:
    """The bridge's server for the ASGI ``app``: the overrides with the known uvicorn release, the public API otherwise.

    ``version`` stands in for the installed uvicorn version (tests).
    """
    protocol = _coalescing_protocol() if uses_uvicorn_internals(version) else None
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol or PUBLIC_HTTP_PROTOCOL,
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        date_header=False,
        proxy_headers=False,  # nothing reads the client address; the middleware costs a call per request
    )
    return _ServiceOwnsSignals(config) if protocol is not None else uvicorn.Server(config)


class _ServiceOwnsSignals(uvicorn.Server):
    """uvicorn without its own signal handlers: SIGTERM belongs to the service, which drains first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@functools.cache
def _coalescing_protocol() -> type[asyncio.Protocol] | None:
    """uvicorn's httptools protocol writing each response in one socket write, or None without that module."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return None

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    return CoalescingHttpToolsProtocol


class _CoalescingTransport:
    """Delegates to the real transport; ``write`` is deferred to the next loop iteration and joined."""

    __slots__ = ("_loop", "_pending", "_scheduled", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        self._scheduled = False
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
