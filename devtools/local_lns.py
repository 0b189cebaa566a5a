"""A local HTTP server playing a network server's downlink API: records every request, answers as scripted.

Used by the tests, the downlink benchmark and local runs; it checks nothing itself, so whoever uses it inspects
:attr:`LocalLns.requests`. It runs in a background thread with HTTP/1.1 keep-alive, like a real network server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

from devtools.ports import LOOPBACK


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as it arrived."""

    method: str
    path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes
    arrived_at: float  # time.monotonic()
    peer_port: int  # the client's port: one value per TCP connection, so reuse shows

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.raw_query, keep_blank_values=True))


@dataclass(frozen=True, slots=True)
class Answer:
    status: int = 200
    body: bytes = b"{}"
    delay_secs: float = 0.0


Responder = Callable[[RecordedRequest], Answer]


@dataclass(slots=True)
class _State:
    requests: list[RecordedRequest] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)
    responder: Responder = field(default=lambda _request: Answer())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be seen
    state: _State  # set on the subclass made per server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = RecordedRequest(
            method="POST",
            path=parts.path,
            raw_query=parts.query,
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
            arrived_at=time.monotonic(),
            peer_port=int(self.client_address[1]),
        )
        with self.state.condition:
            self.state.requests.append(request)
            responder = self.state.responder
            self.state.condition.notify_all()
        answer = responder(request)
        if answer.delay_secs:
            time.sleep(answer.delay_secs)
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a benchmark makes thousands of requests."""


class LocalLns:
    """A context manager running the server on a free loopback port; ``url`` is its base URL."""

    def __init__(self, responder: Responder | None = None) -> None:
        self._state = _State()
        if responder is not None:
            self._state.responder = responder
        handler = type("LocalLnsHandler", (_Handler,), {"state": self._state})
        self._server = ThreadingHTTPServer((LOOPBACK, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-lns", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.condition:
            return list(self._state.requests)

    def respond_with(self, responder: Responder) -> None:
        with self._state.condition:
            self._state.responder = responder

    def wait_for(self, count: int, timeout_secs: float = 10.0) -> list[RecordedRequest]:
        """The requests once at least ``count`` arrived; raise TimeoutError otherwise."""
        with self._state.condition:
            if not self._state.condition.wait_for(lambda: len(self._state.requests) >= count, timeout_secs):
                raise TimeoutError(f"{len(self._state.requests)} of {count} requests after {timeout_secs}s")
            return list(self._state.requests)

    def __enter__(self) -> LocalLns:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
