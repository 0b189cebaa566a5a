"""Helpers for the Lambda tests: event files, a controllable clock, metric capture, injected AWS errors."""

from __future__ import annotations

import bisect
import copy
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def load_event(name: str) -> dict[str, Any]:
    """A copy of ``tests/events/<name>.json``."""
    document: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    return document


def sns_message(event: dict[str, Any]) -> dict[str, Any]:
    """The rule output inside the SNS event's only record."""
    message: dict[str, Any] = json.loads(event["Records"][0]["Sns"]["Message"])
    return message


def with_message(event: dict[str, Any], message: dict[str, Any], message_id: str) -> dict[str, Any]:
    """The same SNS event carrying another rule output under another SNS message id."""
    changed = copy.deepcopy(event)
    changed["Records"][0]["Sns"]["Message"] = json.dumps(message, separators=(",", ":"))
    changed["Records"][0]["Sns"]["MessageId"] = message_id
    return changed


@dataclass
class FakeClock:
    """Time that moves only when someone sleeps."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, secs: float) -> None:
        self.sleeps.append(secs)
        self.now += secs


def max_calls_in_any_second(times: Sequence[float]) -> int:
    """The most calls inside any half-open window ``[t, t + 1)`` starting at a call."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, start + 1.0) - index for index, start in enumerate(ordered)), default=0)


def emitted_metrics(stdout: str) -> dict[str, float]:
    """Sum of every metric in the CloudWatch EMF documents Powertools printed."""
    totals: dict[str, float] = {}
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        document = json.loads(line)
        if "_aws" not in document:
            continue
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                name = metric["Name"]
                value = document[name]
                totals[name] = totals.get(name, 0.0) + (sum(value) if isinstance(value, list) else value)
    return totals


def error_response(code: str, message: str, status: int = 400) -> tuple[AWSResponse, dict[str, Any]]:
    """What a ``before-call`` hook returns to make botocore raise ``code`` without reaching the service."""
    http = AWSResponse(url="https://iot.invalid/", status_code=status, headers={}, raw=None)
    return http, {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}


@dataclass
class InjectedErrors:
    """A ``before-call`` hook failing the first ``times`` calls (optionally only those for one thing)."""

    code: str
    message: str
    times: int
    status: int = 400
    thing_name: str | None = None
    injected: int = 0

    def __call__(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if self.injected >= self.times:
            return None
        if self.thing_name is not None and self.thing_name not in str(params.get("url_path", "")):
            return None
        self.injected += 1
        return error_response(self.code, self.message, self.status)


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookServer:
    """A real HTTP server on 127.0.0.1 answering with scripted statuses (then 200) and recording every request."""

    def __init__(self, statuses: Sequence[int] = ()) -> None:
        self.statuses = list(statuses)
        self.requests: list[ReceivedRequest] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                server.requests.append(ReceivedRequest(self.path, headers, body))
                status = server.statuses.pop(0) if server.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="webhook-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/device-status"

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
