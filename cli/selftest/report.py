"""One line per step with its time; a failure with what to check."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from bridge_container.exceptions import MqttError
from cli.selftest.target import SelfTestError


class Reporter:
    """One line per step with its time; remembers the first failure."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failed = False

    @contextlib.asynccontextmanager
    async def step(self, name: str, started_at: float | None = None) -> AsyncIterator[list[str]]:
        """Run a step timed from now (or ``started_at``); the body may append a detail shown after the name.

        A failure is printed with what to check, and raised on.
        """
        detail: list[str] = []
        started = time.monotonic() if started_at is None else started_at
        try:
            try:
                yield detail
            except (ClientError, BotoCoreError, MqttError, OSError) as exc:
                raise SelfTestError(
                    f"{type(exc).__name__}: {exc}", "your AWS credentials and permissions, the region, the network"
                ) from exc
        except SelfTestError as exc:
            self.failed = True
            self._line("FAIL", time.monotonic() - started, f"{name}: {exc.problem}")
            self.out.write(f"        check: {exc.check}\n")
            self.out.flush()
            raise
        self._line("ok", time.monotonic() - started, name + (f": {detail[0]}" if detail else ""))

    def skipped(self, name: str) -> None:
        self.out.write(f"  {'skip':<4}          {name}\n")

    def _line(self, verdict: str, secs: float, text: str) -> None:
        self.out.write(f"  {verdict:<4} {secs:6.2f} s  {text}\n")
        self.out.flush()
