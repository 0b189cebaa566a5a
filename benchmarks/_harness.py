"""Pieces shared by benchmarks: a lean HTTP/1.1 load generator, a mosquitto_sub recorder, a bridge process, stats.

The load generator is raw asyncio protocols on keep-alive connections (an HTTP client library would cost more CPU
than the bridge it measures on a 2-core machine). The subscriber is ``mosquitto_sub`` (C) in its own process,
stamping each message with CLOCK_REALTIME on arrival; the sender stamps with ``time.time()`` (the same clock). It
reads on the broker's plain observer port: a receiver of a whole fleet's 1000 msg/s is a measurement tool, not an
AWS client, and is held to no IoT Core rule (the bridge is: it publishes through the enforcing stand-in).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from prometheus_client.parser import text_string_to_metric_families
from tqdm import tqdm

from bridge_container.mqtt.crt import CrtClientFactory
from bridge_container.mqtt.port import ClientCallbacks, InboundMessage, MqttClient
from bridge_container.states import ConnectionState
from bridge_domain.connection import ConnectionConfiguration
from devtools.broker import LocalBroker
from devtools.http_load import KeepAliveConnection
from devtools.local_lns import LocalLns
from devtools.ports import free_port, wait_for_port

READY_TIMEOUT_SECS = 30.0
_SEQ_RE = re.compile(rb'"FCntUp":(\d+)')


# --- statistics -------------------------------------------------------------------------------------------------
def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def max_in_window(times: Sequence[float], window_secs: float = 1.0) -> int:
    """Most events inside any half-open window of ``window_secs`` (sliding, not aligned to seconds)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window_secs:
            start += 1
        best = max(best, end - start + 1)
    return best


def per_second(times: Sequence[float], origin: float) -> list[int]:
    """Counts per 1-second bin from ``origin`` (for the plot)."""
    if not times:
        return []
    bins = [0] * (int(max(times) - origin) + 1)
    for moment in times:
        if moment >= origin:
            bins[int(moment - origin)] += 1
    return bins


# --- the subscriber -------------------------------------------------------------------------------------------
@dataclass
class Arrival:
    at: float
    seq: int


class Subscriber:
    """``mosquitto_sub`` on the observer port writing ``<arrival time> <payload>`` lines to a file."""

    def __init__(self, broker: LocalBroker, topic_filter: str, workdir: Path) -> None:
        self.broker = broker
        self.topic_filter = topic_filter
        self.path = workdir / f"arrivals-{time.monotonic_ns()}.txt"
        self._process: subprocess.Popen[bytes] | None = None
        self._file: Any = None

    def start(self) -> Subscriber:
        self._file = self.path.open("wb")
        self._process = subprocess.Popen(
            [
                "mosquitto_sub",
                "-h",
                self.broker.host,
                "-p",
                str(self.broker.ports.plain),
                "-t",
                self.topic_filter,
                "-q",
                "0",
                "-F",
                "%U %p",
            ],
            stdout=self._file,
            stderr=subprocess.DEVNULL,
        )
        self._wait_subscribed()
        return self

    def _wait_subscribed(self) -> None:
        """Publish probes (FCntUp -1 never matches a sequence number) until one arrives."""
        probe_topic = self.topic_filter.replace("+", "probe").replace("#", "probe")
        deadline = time.monotonic() + READY_TIMEOUT_SECS
        while time.monotonic() < deadline:
            subprocess.run(
                [
                    "mosquitto_pub",
                    "-h",
                    self.broker.host,
                    "-p",
                    str(self.broker.ports.plain),
                    "-t",
                    probe_topic,
                    "-m",
                    "probe",
                ],
                check=True,
            )
            time.sleep(0.1)
            if self.path.stat().st_size > 0:
                return
        raise TimeoutError("mosquitto_sub did not receive the probe")

    def stop(self) -> list[Arrival]:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
        if self._file is not None:
            self._file.close()
        return self.arrivals()

    def count(self) -> int:
        """Lines so far (cheap enough to poll while waiting for the tail of a run)."""
        with self.path.open("rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))

    def arrivals(self) -> list[Arrival]:
        found: list[Arrival] = []
        with self.path.open("rb") as handle:
            for line in handle:
                stamp, _, payload = line.partition(b" ")
                match = _SEQ_RE.search(payload)
                if match is not None:
                    found.append(Arrival(float(stamp), int(match.group(1))))
        return found

    def wait_quiet(self, expected: int, timeout_secs: float) -> None:
        """Return once ``expected`` lines arrived (plus the probe) or nothing more arrives for a second."""
        deadline = time.monotonic() + timeout_secs
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            current = self.count()
            if current >= expected:
                return
            if current != last:
                last, last_change = current, time.monotonic()
            elif time.monotonic() - last_change > 1.0:
                return
            time.sleep(0.1)


# --- the AWS IoT Core stand-in's figures ------------------------------------------------------------------------
def process_cpu_secs(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (0 without one)."""
    if pid is None:
        return 0.0
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def aws_figures(broker: LocalBroker) -> dict[str, Any]:
    """What the stand-in counted since its last reset: violations by reason and client, the busiest seconds."""
    if broker.stand_in is None:
        return {}
    report = broker.stand_in.report()
    windows = report["windows"]
    return {
        "violations": report["total"],
        "violations_by_reason": report["by_reason"],
        "violations_by_client": report["by_client"],
        "max_1s_window_per_connection": windows["max_1s_per_connection"],
        "max_1s_window_aggregate": windows["max_1s_aggregate"],
        "max_1s_window_aggregate_by_client_group": windows["max_1s_aggregate_by_client_group"],
        "max_1s_window_by_connection": {
            f"{connection['client_id']}#{connection['connection']}": connection["max_1s_window"]
            for connection in windows["connections"]
            if connection["enforced"] and connection["publishes"]
        },
    }


def reset_aws_figures(broker: LocalBroker) -> None:
    if broker.stand_in is not None:
        broker.stand_in.reset()


# --- goals --------------------------------------------------------------------------------------------------
def goal(value: float, limit: float, *, at_most: bool = True, why: str = "") -> dict[str, Any]:
    """A figure against its goal (``value <= limit``, or ``>=`` with ``at_most=False``), for the JSON and the print."""
    met = value <= limit if at_most else value >= limit
    figure: dict[str, Any] = {"value": value, "goal": f"{'<=' if at_most else '>='} {limit:g}", "met": met}
    if why:
        figure["why"] = why
    return figure


def print_goals(title: str, goals: dict[str, dict[str, Any]]) -> None:
    """One ``goal`` line per figure: its value, the goal, met or MISSED."""
    for name, figure in goals.items():
        verdict = "met" if figure["met"] else "MISSED"
        print(f"goal {title}: {name} = {figure['value']:g} (goal {figure['goal']}): {verdict}", flush=True)


# --- the bridge in its own process -----------------------------------------------------------------------------
@dataclass
class BridgeProcess:
    """``python -m bridge_container --config`` on a free port; its pid is what the CPU figure measures."""

    config_path: Path
    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> BridgeProcess:
        env = {
            **os.environ,
            "BRIDGE_STATE_DIR": str(self.workdir / "state"),
            "BRIDGE_TASK_ID": "bench",
            "BRIDGE_EMF_INTERVAL_SECS": "0",
            "BRIDGE_LOG_LEVEL": "WARNING",
            **self.extra_env,
        }
        log = (self.workdir / f"bridge-{self.port}.log").open("wb")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bridge_container", "--config", str(self.config_path), "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        wait_for_port(self.port, timeout_secs=READY_TIMEOUT_SECS)
        deadline = time.monotonic() + READY_TIMEOUT_SECS
        while time.monotonic() < deadline:
            health = httpx.get(f"{self.url}/healthz", timeout=2).json()
            clients = health["connections"].get("default", {}).get("clients", {})
            if clients and all(client["state"] == "OPENED" for client in clients.values()):
                return self
            time.sleep(0.1)
        raise TimeoutError("the bridge's clients did not all open")

    def metrics(self) -> dict[str, float]:
        """The bridge's ``/metrics`` samples summed over their labels but one: ``name{label="value"}`` → value.

        Each sample is kept under its bare name (summed over every label) and, for the labels that split a family
        by outcome (``status``, ``reason``), under ``name{label="value"}`` too.
        """
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
                for label in ("status", "reason"):
                    if label in sample.labels:
                        key = f'{sample.name}{{{label}="{sample.labels[label]}"}}'
                        totals[key] = totals.get(key, 0.0) + sample.value
        return totals

    def cpu_secs(self) -> float:
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


@contextlib.contextmanager
def running(bridge: BridgeProcess) -> Iterator[BridgeProcess]:
    try:
        yield bridge.start()
    finally:
        bridge.stop()


# --- helper processes -----------------------------------------------------------------------------------------
CHILD_JOIN_TIMEOUT_SECS = 10.0


@contextlib.contextmanager
def child_process(target: Any, *args: Any) -> Iterator[Pipe]:
    """A spawned child process running ``target(pipe, *args)``, and the parent's end of its pipe."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=target, args=(child, *args), daemon=True)
    process.start()
    try:
        yield parent
    finally:
        process.join(timeout=CHILD_JOIN_TIMEOUT_SECS)
        if process.is_alive():
            process.kill()


def serve_lns(pipe: Pipe) -> None:
    """A :class:`LocalLns` in a process of its own: sends its URL, and on any message its requests.

    Requests as ``(Payload query parameter, time.monotonic() of arrival)``; CLOCK_MONOTONIC is one clock for the
    whole machine, so another process's readings compare with these.
    """
    with LocalLns() as lns:
        pipe.send(lns.url)
        pipe.recv()  # told to stop
        pipe.send([(request.query.get("Payload", ""), request.arrived_at) for request in lns.requests])


# --- the HTTP load generator ------------------------------------------------------------------------------------
@dataclass
class LoadResult:
    sent: dict[int, float] = field(default_factory=dict)  # sequence number → send time (accepted only)
    statuses: dict[int, int] = field(default_factory=dict)
    requests: int = 0

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


class HttpLoad:
    """Keep-alive connections to one host; requests go out on whichever connection is free."""

    def __init__(self, port: int, connections: int) -> None:
        self.port = port
        self.size = connections
        self._free: asyncio.Queue[KeepAliveConnection] = asyncio.Queue()
        self._all: list[KeepAliveConnection] = []

    async def __aenter__(self) -> HttpLoad:
        loop = asyncio.get_running_loop()
        for _ in range(self.size):
            _, protocol = await loop.create_connection(
                lambda: KeepAliveConnection(self._free.put_nowait), "127.0.0.1", self.port
            )
            self._all.append(protocol)
            self._free.put_nowait(protocol)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for connection in self._all:
            if connection.transport is not None:
                connection.transport.close()

    async def request(self, request: bytes, done: Callable[[int], None]) -> None:
        connection = await self._free.get()
        connection.send(request, done)

    async def idle(self) -> None:
        """Wait until every request has been answered (each connection is back in the free queue)."""
        taken = [await self._free.get() for _ in range(self.size)]
        for connection in taken:
            self._free.put_nowait(connection)


def post(path: str, body: bytes, headers: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{headers}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# --- the downlink application (an AWS client publishing downlinks, in a process of its own) --------------------
DOWNLINK_TOPIC = "tpx/things/{dev_eui}/downlink"
DOWNLINK_DEVICES = 1_000  # downlinks spread over this many DevEUIs, as a fleet's would be
PROBE_PAYLOAD = "ffffffff"
PROBE_INTERVAL_SECS = 0.2
OPEN_TIMEOUT_SECS = 20.0
APPLICATION_SETTLE_SECS = 5.0  # after the last downlink: the backlog reaches the LNS, failed feedback arrives


async def downlink_application(
    pipe: Pipe,
    config: ConnectionConfiguration,
    task_id: str,
    connections: int,
    rate_per_sec: float,
    duration_secs: float,
    *,
    pause_after_go_secs: float = 0.0,
) -> tuple[dict[int, float], int]:
    """Probe until ``pipe`` says go, then publish downlinks round robin over ``connections`` on schedule.

    The application is an AWS client too, held to 100 publishes/s per connection: at 100 downlinks/s it needs two
    connections. Returns the publish time of each sequence number and how many ``failed`` feedbacks it saw.
    """
    opened = [asyncio.Event() for _ in range(connections)]
    failed: list[InboundMessage] = []

    def callbacks(slot: int) -> ClientCallbacks:
        def on_state(_client: MqttClient, state: ConnectionState) -> None:
            if state is ConnectionState.OPENED:
                opened[slot].set()

        return ClientCallbacks(on_state, failed.append)

    factory = CrtClientFactory(config, task_id)
    clients = [factory(slot, callbacks(slot)) for slot in range(connections)]
    for client in clients:
        await client.start()
    try:
        async with asyncio.timeout(OPEN_TIMEOUT_SECS):
            for event in opened:
                await event.wait()
        await clients[0].subscribe(DOWNLINK_TOPIC.format(dev_eui="+") + "/failed")
        probe = orjson.dumps({"payload_hex": PROBE_PAYLOAD})
        while not pipe.poll():
            await clients[0].publish(DOWNLINK_TOPIC.format(dev_eui="00000000000000FF"), probe)
            await asyncio.sleep(PROBE_INTERVAL_SECS)
        pipe.recv()
        await asyncio.sleep(pause_after_go_secs)
        sent_at = await publish_downlinks_at_rate(clients, rate_per_sec, duration_secs)
        await asyncio.sleep(APPLICATION_SETTLE_SECS)
    finally:
        for client in clients:
            await client.stop()
    return sent_at, len(failed)


async def publish_downlinks_at_rate(
    clients: list[MqttClient], rate_per_sec: float, duration_secs: float
) -> dict[int, float]:
    """Publish ``rate_per_sec`` downlinks a second round robin over ``clients``; the publish time by sequence."""
    sent_at: dict[int, float] = {}
    total = round(rate_per_sec * duration_secs)
    start = time.monotonic()
    with tqdm(total=total, unit="msg", desc="downlinks", file=sys.stderr, leave=False) as progress:
        for sequence in range(total):
            delay = start + sequence / rate_per_sec - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            topic = DOWNLINK_TOPIC.format(dev_eui=f"70B3D57E{sequence % DOWNLINK_DEVICES:08X}")
            payload = orjson.dumps({"payload_hex": f"{sequence:08x}", "FPort": 2})
            sent_at[sequence] = time.monotonic()
            await clients[sequence % len(clients)].publish(topic, payload)
            progress.update()
    return sent_at
