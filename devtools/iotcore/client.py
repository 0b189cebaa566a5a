"""Reading the stand-in's counters from another process: ``GET /violations`` and ``POST /reset``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from devtools.ports import LOOPBACK

TIMEOUT_SECS: Final = 5.0


@dataclass(frozen=True, slots=True)
class Violations:
    """What AWS IoT Core would have refused or discarded: counts by reason and by client ID."""

    total: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    by_client: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Violations:
        return cls(int(document["total"]), dict(document["by_reason"]), dict(document["by_client"]))

    def since(self, earlier: Violations) -> Violations:
        """The violations counted after ``earlier`` was read."""
        by_reason = {
            reason: count - earlier.by_reason.get(reason, 0)
            for reason, count in self.by_reason.items()
            if count > earlier.by_reason.get(reason, 0)
        }
        by_client = {}
        for client, reasons in self.by_client.items():
            before = earlier.by_client.get(client, {})
            grown = {reason: count - before.get(reason, 0) for reason, count in reasons.items()}
            grown = {reason: count for reason, count in grown.items() if count > 0}
            if grown:
                by_client[client] = grown
        return Violations(sum(by_reason.values()), by_reason, by_client)

    def describe(self) -> str:
        if not self.total:
            return "none"
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.by_reason.items()))
        clients = "; ".join(
            f"{client}: " + ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items()))
            for client, reasons in sorted(self.by_client.items())
        )
        return f"{self.total} ({reasons}) by client ID: {clients}"


@dataclass(frozen=True, slots=True)
class WindowFigures:
    """The most publishes (offered, both directions) seen in any rolling 1-second window."""

    max_1s_per_connection: int
    max_1s_aggregate: int
    by_connection: list[dict[str, Any]]

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> WindowFigures:
        windows = document["windows"]
        return cls(windows["max_1s_per_connection"], windows["max_1s_aggregate"], list(windows["connections"]))


class StandInClient:
    """The counters of a running stand-in process, over its loopback control port."""

    def __init__(self, port: int, host: str = LOOPBACK) -> None:
        self.url = f"http://{host}:{port}"

    def report(self) -> dict[str, Any]:
        """The whole ``/violations`` document (counts, audited counts, Basic Ingest, windows)."""
        response = httpx.get(f"{self.url}/violations", timeout=TIMEOUT_SECS)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def violations(self) -> Violations:
        return Violations.from_json(self.report())

    def windows(self) -> WindowFigures:
        return WindowFigures.from_json(self.report())

    def reset(self) -> None:
        httpx.post(f"{self.url}/reset", timeout=TIMEOUT_SECS).raise_for_status()
