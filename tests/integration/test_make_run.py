"""``make run`` end to end: publishes through mosquitto, a working mosquitto_sub command, reruns, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from bridge_container.connections.sqlite_store import SqliteConnectionStore

pytestmark = pytest.mark.integration

RUN_TIMEOUT_SECS = 120
FIRST_LINE_TIMEOUT_SECS = 60
DEVICES = 5
SUB_COMMAND_RE = re.compile(r"^\s*(mosquitto_sub .*)$", re.MULTILINE)


def runner_command(state_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "devtools", "--state-dir", str(state_dir), "--devices", str(DEVICES),
        "--rate", "25", "--summary-every", "1", "--downlink-every", "1", *extra,
    ]  # fmt: skip


@dataclass(frozen=True)
class FirstRun:
    state_dir: Path
    returncode: int
    stdout: str
    summary: dict[str, Any]
    ca_pem: bytes


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    """A run with --duration, as CI would do it."""
    state_dir = tmp_path_factory.mktemp("make-run") / "state"
    summary_path = state_dir.parent / "summary.json"
    completed = subprocess.run(
        runner_command(state_dir, "--duration", "4", "--summary-json", str(summary_path)),
        capture_output=True, text=True, timeout=RUN_TIMEOUT_SECS, check=False,
    )  # fmt: skip
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return FirstRun(state_dir, completed.returncode, completed.stdout + completed.stderr, summary,
                    (state_dir / "pki" / "ca.pem").read_bytes())  # fmt: skip


def test_a_timed_run_publishes_through_mosquitto_and_exits_0(first_run: FirstRun) -> None:
    assert first_run.returncode == 0, first_run.stdout
    summary = first_run.summary
    assert summary["at_broker"] > 0
    # everything the simulated LNSs sent was accepted, published and received from mosquitto
    assert summary["lns_sent"] == summary["lns_accepted"] == summary["bridge"]["accepted"]
    assert summary["at_broker"] == summary["bridge"]["published"] == summary["lns_sent"]
    assert summary["devices_seen_at_broker"] == DEVICES
    assert summary["things_registered"] == DEVICES
    assert summary["downlinks_at_lns"] >= 1
    assert "LNS sent" in first_run.stdout
    assert "AWS would discard" in first_run.stdout
    # nothing the bridge did would have been discarded or refused by AWS IoT Core at this rate
    assert summary["aws"]["total"] == 0, summary["aws"]
    assert 0 < summary["aws"]["max_1s_per_connection"] <= 100
    ports = json.loads((first_run.state_dir / "ports.json").read_text())
    assert f"mosquitto_sub -h 127.0.0.1 -p {ports['plain']} -t " in first_run.stdout


class LineReader:
    """The lines of a child's stdout, readable with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        stream = process.stdout

        def pump() -> None:
            for line in stream:
                self.lines.put(line)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, pattern: str, timeout_secs: float) -> str:
        deadline = time.monotonic() + timeout_secs
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.seen)}")


def processes_using(state_dir: Path) -> list[str]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(state_dir) in cmdline and "pytest" not in cmdline:
            found.append(cmdline)
    return found


@pytest.fixture
def second_run(first_run: FirstRun) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        runner_command(first_run.state_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_second_run_reuses_the_ca_and_connection_shows_uplinks_and_stops_on_ctrl_c(
    first_run: FirstRun, second_run: subprocess.Popen[str]
) -> None:
    output = LineReader(second_run)
    banner = output.wait_for(r"^\s*mosquitto_sub ", FIRST_LINE_TIMEOUT_SECS)
    output.wait_for(r"LNS sent", FIRST_LINE_TIMEOUT_SECS)
    # the printed command, pasted as is, shows uplinks (-C: exit after 3 messages, -W: give up after 15 s)
    pasted = subprocess.run(
        [*shlex.split(banner.strip()), "-C", "3", "-W", "15"], capture_output=True, text=True, timeout=30, check=False
    )
    assert pasted.returncode == 0, pasted.stderr
    received = pasted.stdout.splitlines()
    assert len(received) == 3
    for line in received:
        topic, _, document = line.partition(" ")
        assert re.fullmatch(r"tpx/things/70B3D57ED0[0-9A-F]{6}/uplink", topic)
        assert json.loads(document)
    second_run.send_signal(signal.SIGINT)
    assert second_run.wait(timeout=60) == 0, "".join(output.seen)
    output.wait_for(r"^uplinks: ", 5)
    assert (first_run.state_dir / "pki" / "ca.pem").read_bytes() == first_run.ca_pem
    assert processes_using(first_run.state_dir) == []
    store = SqliteConnectionStore(first_run.state_dir / "store")
    stored = asyncio.run(store.list())
    asyncio.run(store.close())
    assert [record.connection.name for record in stored] == ["make-run"]
    assert stored[0].version == 2  # created by the first run, replaced by the second
