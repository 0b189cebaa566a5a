"""A background task that crashes stops the whole service, with its error, instead of dying unnoticed."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator

import pytest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from bridge_container import __main__ as entry
from bridge_container.service import BridgeService
from bridge_container.settings import ServiceSettings
from bridge_container.tasks import spawn, supervised
from devtools.ports import free_port

pytestmark = pytest.mark.integration


class BrokenCollector(Collector):
    """A metric source that fails: the metric flush, a background task, crashes on its first run."""

    def describe(self) -> list[Metric]:
        return []  # registering does not collect

    def collect(self) -> Iterator[Metric]:
        raise RuntimeError("the collector is broken")


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_a_crashed_background_task_stops_the_service_with_its_error() -> None:
    settings = ServiceSettings(task_id="crash", port=free_port(), emf_interval_secs=0.2, drain_deadline_secs=0.5)
    service = BridgeService(settings)
    service.registry.register(BrokenCollector())
    running = asyncio.create_task(service.run())
    while not port_is_open(settings.port):
        assert not running.done(), "the service stopped before serving"
        await asyncio.sleep(0.02)
    with pytest.raises(RuntimeError, match="the collector is broken") as raised:
        await asyncio.wait_for(running, 10)  # no request_shutdown(): the crash alone stops it
    assert "in background task 'metric-flush'" in raised.value.__notes__
    assert not port_is_open(settings.port)


async def test_a_crash_cancels_the_other_background_tasks() -> None:
    cancelled = asyncio.Event()

    async def loop_forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def crash() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("crashed")

    async def serve() -> None:
        async with supervised():
            spawn(loop_forever(), "loop")
            spawn(crash(), "crash")
            await asyncio.sleep(5)

    with pytest.raises(BaseExceptionGroup) as raised:
        await serve()
    assert cancelled.is_set()
    [error] = raised.value.exceptions
    assert isinstance(error, ValueError)
    assert error.__notes__ == ["in background task 'crash'"]


def test_the_process_exits_non_zero_with_one_logged_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    monkeypatch.setenv("BRIDGE_TASK_ID", "crash-main")
    monkeypatch.setenv("BRIDGE_HTTP_PORT", str(port))
    monkeypatch.setenv("BRIDGE_EMF_INTERVAL_SECS", "0.2")
    original = BridgeService.__post_init__

    def with_broken_collector(self: BridgeService) -> None:
        original(self)
        self.registry.register(BrokenCollector())

    monkeypatch.setattr(BridgeService, "__post_init__", with_broken_collector)
    switch_interval = sys.getswitchinterval()
    try:
        assert entry.main([]) == 1
    finally:
        sys.setswitchinterval(switch_interval)
    errors = [line for line in capsys.readouterr().err.splitlines() if '"level": "ERROR"' in line or "ERROR" in line]
    assert len([line for line in errors if "the bridge stopped on an error" in line]) == 1, errors
