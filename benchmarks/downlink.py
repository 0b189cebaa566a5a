"""Downlink benchmark: an application publishes at a fixed rate through mosquitto; the bridge forwards to a local LNS.

Three processes, so that none skews another's clock readings: the application (publishes ``--rate`` downlinks a
second for ``--duration-secs`` over mTLS with the real client library, and counts failed feedback), the bridge
(one task: pool + downlink service on the shared subscription, ``downlinkRatePerSec`` = ``--rate-limit``), and
a local HTTP server playing ThingPark's downlink API. Latency runs from the application's publish to the
request's arrival at the network server; both read CLOCK_MONOTONIC, which is one clock for the whole machine.
Both MQTT clients go through the enforcing IoT Core stand-in; the result records what AWS would have discarded (by
reason and client ID, counted from the moment the application starts publishing) and the busiest rolling second
per connection and in all.

    python -m benchmarks.downlink [--rate 100] [--duration-secs 30] [--output benchmarks/results/downlink.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import uvloop
from prometheus_client import CollectorRegistry

from benchmarks._harness import (
    OPEN_TIMEOUT_SECS,
    PROBE_PAYLOAD,
    aws_figures,
    child_process,
    downlink_application,
    reset_aws_figures,
    serve_lns,
)
from bridge_container.downlink.service import DownlinkService
from bridge_container.metrics import UplinkMetrics
from bridge_container.mqtt.crt import CrtClientFactory
from bridge_container.uplink.pool import MqttPool, PoolSettings
from bridge_domain.connection import Connection, ConnectionConfiguration
from devtools.broker import LocalBroker
from devtools.pki import DevPki

DEFAULT_OUTPUT = Path("benchmarks/results/downlink.json")
CONNECTION_ID = "bench"
AS_KEY = "00112233445566778899aabbccddeeff"
APPLICATION_CONNECTIONS = 2  # 50 publishes/s each at the default rate, clear of the 100/s per connection

logger = logging.getLogger("benchmarks.downlink")


@dataclass(frozen=True, slots=True)
class DownlinkResult:
    """What ``benchmarks/results/downlink.json`` holds."""

    target_msgs_per_sec: float
    achieved_msgs_per_sec: float
    p50_ms: float
    p99_ms: float
    max_1s_window_msgs: int
    lost: int
    published: int
    delivered: int
    failed_feedback: int
    duration_secs: float
    downlink_rate_limit_per_sec: int
    aws: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Setup:
    """What every process needs to build the same connection configuration."""

    pki_dir: Path
    broker_host: str
    broker_port: int
    lns_url: str
    rate_limit_per_sec: int

    def configuration(self, client_name: str) -> ConnectionConfiguration:
        pki = DevPki(self.pki_dir)
        client = pki.client(client_name)
        lns = {"kind": "thingpark", "asKey": AS_KEY, "downlinkUrl": f"{self.lns_url}/thingpark/lrc/rest/downlink"}
        document: dict[str, Any] = {
            "connectorId": "actility-aws-iot",
            "name": "downlink benchmark",
            "configuration": {
                "deviceType": "bench-sensor",
                "region": "eu-central-1",
                "certificateId": "ab" * 32,
                "certificate": client.cert_pem,
                "privateKey": client.key_pem,
                "broker": {"host": self.broker_host, "port": self.broker_port, "caCertificate": pki.ca.cert_pem},
                "lns": [lns],
                "poolSize": 2,
                "uplinkRatePerSec": 200,
                "registerThings": False,
                "downlinkRatePerSec": self.rate_limit_per_sec,
            },
        }
        return Connection.model_validate(document).configuration


# --- the application's process -------------------------------------------------------------------------------
def _run_application(pipe: Pipe, setup: _Setup, rate_per_sec: float, duration_secs: float) -> None:
    application = downlink_application(
        pipe,
        setup.configuration("bench-app"),
        "bench-app",
        APPLICATION_CONNECTIONS,
        rate_per_sec,
        duration_secs,
        pause_after_go_secs=1.0,  # the probes reach the network server; the limiter's window empties
    )
    pipe.send(uvloop.run(application))


# --- the bridge (this process) -------------------------------------------------------------------------------
class _BridgeCounters:
    """The bridge's own downlink counters, read from its registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def value(self, name: str) -> float:
        return sum(
            sample.value
            for metric in self._registry.collect()
            for sample in metric.samples
            if sample.name == name and sample.labels.get("connection") == CONNECTION_ID
        )


async def _run_bridge(setup: _Setup, app: Pipe, before_go: Callable[[], None]) -> None:
    config = setup.configuration("bench-bridge")
    registry = CollectorRegistry()
    counters = _BridgeCounters(registry)
    pool = MqttPool(
        CONNECTION_ID,
        PoolSettings.from_configuration(config),
        CrtClientFactory(config, "bench-bridge"),
        UplinkMetrics(registry),
    )
    async with pool, DownlinkService(CONNECTION_ID, config, pool, registry):
        async with asyncio.timeout(OPEN_TIMEOUT_SECS):
            while counters.value("bridge_downlinks_received_total") == 0:  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0.05)
        await asyncio.to_thread(before_go)
        app.send("go")
        while not app.poll():  # noqa: ASYNC110 - the application reports through its pipe when it is done
            await asyncio.sleep(0.1)


def run(args: argparse.Namespace) -> DownlinkResult:
    with tempfile.TemporaryDirectory(prefix="downlink-bench-") as workdir, child_process(serve_lns) as lns:
        lns_url = lns.recv()
        pki = DevPki(Path(workdir) / "pki")
        with LocalBroker(Path(workdir) / "broker", pki) as broker:
            setup = _Setup(pki.directory, broker.host, broker.ports.tls, lns_url, args.rate_limit)
            with child_process(_run_application, setup, args.rate, args.duration_secs) as app:
                uvloop.run(_run_bridge(setup, app, lambda: reset_aws_figures(broker)))  # the service's own loop
                sent_at, failed_feedback = app.recv()
            aws = aws_figures(broker)
        lns.send("stop")
        arrivals: list[tuple[str, float]] = lns.recv()
    return _summarise(sent_at, arrivals, failed_feedback, args, aws)


# --- figures -------------------------------------------------------------------------------------------------
def max_in_one_second(times: Sequence[float]) -> int:
    """Most events inside any half-open window [t, t + 1 s)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def _percentile_ms(values_secs: Sequence[float], fraction: float) -> float:
    if not values_secs:
        return float("nan")
    ordered = sorted(values_secs)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return round(ordered[index] * 1000, 3)


def _summarise(
    sent_at: dict[int, float],
    arrivals_seen: list[tuple[str, float]],
    failed_feedback: int,
    args: argparse.Namespace,
    aws: dict[str, Any],
) -> DownlinkResult:
    arrivals: dict[int, float] = {}
    for payload, arrived_at in arrivals_seen:
        if payload != PROBE_PAYLOAD:
            arrivals.setdefault(int(payload, 16), arrived_at)
    latencies = [arrivals[sequence] - sent for sequence, sent in sent_at.items() if sequence in arrivals]
    times = sorted(arrivals.values())
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return DownlinkResult(
        target_msgs_per_sec=float(args.rate),
        achieved_msgs_per_sec=round((len(times) - 1) / span, 2) if span > 0 else 0.0,
        p50_ms=_percentile_ms(latencies, 0.50),
        p99_ms=_percentile_ms(latencies, 0.99),
        max_1s_window_msgs=max_in_one_second(times),
        lost=len(sent_at) - len(arrivals),
        published=len(sent_at),
        delivered=len(arrivals),
        failed_feedback=failed_feedback,
        duration_secs=args.duration_secs,
        downlink_rate_limit_per_sec=args.rate_limit,
        aws=aws,
    )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.downlink", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="downlinks published per second (default 100)")
    parser.add_argument("--duration-secs", type=float, default=30.0, help="how long to publish (default 30)")
    parser.add_argument("--rate-limit", type=int, default=100, help="the connection's downlinkRatePerSec (default 100)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"result file (default {DEFAULT_OUTPUT})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> DownlinkResult:
    """Run the benchmark, write the JSON result file and print it."""
    args = _parse(argv)
    logging.basicConfig(level=logging.WARNING)
    result = run(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(json.dumps(asdict(result), indent=2))
    return result


if __name__ == "__main__":
    main()
