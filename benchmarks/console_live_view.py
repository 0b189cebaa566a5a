"""The bridge's CPU at a steady uplink rate with no console page open, and with the live view open.

A local run (``python -m devtools``: the IoT Core stand-in, moto, the bridge, simulated LNSs) offers ``--rate``
uplinks/s, below what its connection publishes, so the buffer stays empty. Phases of ``--phase-secs`` alternate:
*closed* (no page: the ingress hands uplinks straight to the pool) and *open* (what an open "Did it work?" page
does: its two fragments fetched every 2 s, which also keeps the capture tap in). After each open phase the run
waits until the tap has taken itself out again (``IDLE_SECS``). The bridge process's CPU (user + system, in cores)
is compared per phase; the goal is the issue's: open within 5 % of closed.

    python -m benchmarks.console_live_view [--rate 800] [--phase-secs 15] [--pairs 2] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

from benchmarks._harness import goal, print_goals, process_cpu_secs
from bridge_container.console.capture import IDLE_SECS
from devtools.ports import free_port

RESULTS = Path(__file__).resolve().parent / "results" / "console_live_view.json"
START_TIMEOUT_SECS = 120.0
POLL_EVERY_SECS = 2.0  # the live page's hx-trigger
WARM_UP_SECS = 10.0
MAX_EXTRA_FRACTION = 0.05


@contextmanager
def local_run(state_dir: Path, rate: float) -> Iterator[tuple[str, str, str, int]]:
    """(bridge URL, admin token, connection id, bridge pid) of a local run that stops (Ctrl-C) on exit."""
    state_dir.mkdir(mode=0o700, parents=True)
    (state_dir / "ports.json").write_text(json.dumps({"http": free_port()}))
    command = [
        sys.executable, "-m", "devtools", "--state-dir", str(state_dir), "--devices", "100", "--rate", str(rate),
        "--downlink-every", "0", "--summary-every", "3600",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = connection_id = None
        deadline = time.monotonic() + START_TIMEOUT_SECS
        assert process.stdout is not None
        while (url is None or connection_id is None) and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                raise SystemExit("the local run stopped before it started")
            words = line.split()
            if line.startswith("  bridge: "):
                url = words[1]
            elif line.startswith("  connection "):
                connection_id = words[1].rstrip(":")
        if url is None or connection_id is None:
            raise SystemExit("the local run did not start in time")
        bridges = [
            child.pid
            for child in psutil.Process(process.pid).children(recursive=True)
            if "bridge_container" in " ".join(child.cmdline())
        ]
        yield url, (state_dir / "admin-token").read_text().strip(), connection_id, bridges[0]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


def phase_cores(pid: int, secs: float, client: httpx.Client | None, paths: Sequence[str]) -> float:
    """The bridge's CPU in cores over ``secs``, with the page's fetches every 2 s when ``client`` is given."""
    cpu_before, started = process_cpu_secs(pid), time.monotonic()
    while (now := time.monotonic()) - started < secs:
        if client is not None:
            for path in paths:
                client.get(path).raise_for_status()
        time.sleep(min(POLL_EVERY_SECS, max(0.0, secs - (now - started))))
    return (process_cpu_secs(pid) - cpu_before) / (time.monotonic() - started)


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.console_live_view", description=__doc__)
    parser.add_argument("--rate", type=float, default=800.0)
    parser.add_argument("--phase-secs", type=float, default=15.0)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    closed: list[float] = []
    opened: list[float] = []
    with tempfile.TemporaryDirectory() as scratch, local_run(Path(scratch) / "state", args.rate) as run:
        url, token, connection_id, pid = run
        base = f"/console/connections/{connection_id}"
        paths = [f"{base}/live/uplinks", f"{base}/live/feedback"]
        with httpx.Client(base_url=url, timeout=30.0) as client:
            client.post("/console/login", data={"token": token})
            time.sleep(WARM_UP_SECS)
            for pair in range(args.pairs):
                if pair:
                    time.sleep(IDLE_SECS + 5)  # the tap of the previous open phase takes itself out
                closed.append(phase_cores(pid, args.phase_secs, None, paths))
                opened.append(phase_cores(pid, args.phase_secs, client, paths))
                print(f"pair {pair + 1}: closed {closed[-1]:.3f} cores, live view open {opened[-1]:.3f} cores")
    closed_cores, open_cores = statistics.mean(closed), statistics.mean(opened)
    extra = open_cores / closed_cores - 1.0
    goals = {"live_view_extra_fraction": goal(round(extra, 4), MAX_EXTRA_FRACTION, why="the issue: within 5 %")}
    figures: dict[str, object] = {
        "rate_per_sec": args.rate,
        "closed_cores": [round(value, 4) for value in closed],
        "open_cores": [round(value, 4) for value in opened],
        "load_average_at_end": os.getloadavg()[0],
        "goals": goals,
    }
    print_goals("console_live_view", goals)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    main()
