"""Downlinks through a broker restart: delivered, duplicates at the network server (goal 0), time to resume.

An application publishes ``--rate`` downlinks a second at QoS 1 for ``--duration-secs`` (``mosquitto_pub`` per
message on the observer port, each with its MQTT 5 ``messageId``; it counts as published when the broker
acknowledged it). After ``--restart-at-secs`` the broker (mosquitto with persistence, behind the enforcing stand-in)
is stopped for ``--outage-secs`` and started again; publishes in that time fail and are not counted. The bridge
(pool + downlink service, its subscriber on a persistent session) forwards to a local HTTP server playing
ThingPark, which answers after ``--lns-delay-ms`` so that downlinks are in flight when the broker goes. mosquitto
does not restore a persistent session's shared subscription, so the bridge subscribes the plain filter here.

Figures: ``published`` (acknowledged by the broker), ``delivered`` (distinct downlinks at the network server),
``lost`` (published, never delivered), ``duplicates_at_lns`` (requests beyond one per downlink),
``duplicates_recognised`` (deliveries the bridge did not send again), ``resume_secs`` (broker back → first
downlink at the network server) and ``catch_up_secs`` (broker back → every downlink published before the outage
delivered).

    python -m benchmarks.downlink_restart [--rate 50] [--duration-secs 20] [--output ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from benchmarks._harness import aws_figures
from bridge_container.downlink.service import DownlinkService
from bridge_container.metrics import UplinkMetrics
from bridge_container.mqtt.crt import CrtClientFactory
from bridge_container.uplink.pool import MqttPool, PoolSettings
from bridge_domain.connection import Connection, ConnectionConfiguration
from devtools.broker import LocalBroker
from devtools.local_lns import Answer, LocalLns
from devtools.pki import DevPki

DEFAULT_OUTPUT = Path("benchmarks/results/downlink_restart.json")
CONNECTION_ID = "bench"
PLAIN_FILTER = "tpx/things/+/downlink"
DEVICES = 50
OPEN_TIMEOUT_SECS = 20.0
SETTLE_SECS = 10.0  # after the last publish: the session's backlog reaches the network server
MAX_PUBLISHERS = 16  # mosquitto_pub processes at once

logger = logging.getLogger("benchmarks.downlink_restart")


@dataclass(frozen=True, slots=True)
class RestartResult:
    """What ``benchmarks/results/downlink_restart.json`` holds."""

    rate_per_sec: float
    duration_secs: float
    restart_at_secs: float
    outage_secs: float
    lns_delay_ms: float
    attempted: int
    published: int
    delivered: int
    lost: int
    duplicates_at_lns: int
    duplicates_recognised: int
    resume_secs: float
    catch_up_secs: float
    aws: dict[str, Any]


def _configuration(pki: DevPki, broker: LocalBroker, lns: LocalLns) -> ConnectionConfiguration:
    client = pki.client("bench-restart")
    document: dict[str, Any] = {
        "connectorId": "actility-aws-iot",
        "name": "downlink restart benchmark",
        "configuration": {
            "deviceType": "bench-sensor",
            "region": "eu-central-1",
            "certificateId": "ab" * 32,
            "certificate": client.cert_pem,
            "privateKey": client.key_pem,
            "broker": {"host": broker.host, "port": broker.ports.tls, "caCertificate": pki.ca.cert_pem},
            "lns": [{"kind": "thingpark", "downlinkUrl": f"{lns.url}/thingpark/lrc/rest/downlink"}],
            "poolSize": 2,
            "uplinkRatePerSec": 200,
            "registerThings": False,
        },
    }
    return Connection.model_validate(document).configuration


async def _publish(broker: LocalBroker, sequence: int) -> bool:
    """One downlink at QoS 1; True when the broker acknowledged it."""
    dev_eui = f"70B3D57E{sequence % DEVICES:08X}"
    process = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", broker.host, "-p", str(broker.ports.plain), "-V", "5", "-q", "1",
        "-t", f"tpx/things/{dev_eui}/downlink", "-m", f'{{"payload_hex": "{sequence:08x}"}}',
        "-D", "publish", "user-property", "messageId", f"bench-{sequence}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return await process.wait() == 0


async def _application(broker: LocalBroker, args: argparse.Namespace) -> tuple[dict[int, float], int, float]:
    """Publish on schedule while the broker restarts; (publish time of each acknowledged one, attempted, back at)."""
    published: dict[int, float] = {}
    slots = asyncio.Semaphore(MAX_PUBLISHERS)
    total = round(args.rate * args.duration_secs)
    start = time.monotonic()
    back_at = float("nan")

    async def one(sequence: int) -> None:
        async with slots:
            at = time.monotonic()
            if await _publish(broker, sequence):
                published[sequence] = at

    async def restart() -> None:
        nonlocal back_at
        await asyncio.sleep(args.restart_at_secs)
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(args.outage_secs)
        await asyncio.to_thread(broker.start)
        back_at = time.monotonic()

    async with asyncio.TaskGroup() as group:
        group.create_task(restart())
        for sequence in range(total):
            delay = start + sequence / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            group.create_task(one(sequence))
    return published, total, back_at


async def _run(broker: LocalBroker, lns: LocalLns, pki: DevPki, args: argparse.Namespace) -> RestartResult:
    config = _configuration(pki, broker, lns)
    registry = CollectorRegistry()
    pool = MqttPool(
        CONNECTION_ID,
        PoolSettings.from_configuration(config),
        CrtClientFactory(config, "bench-restart", end_sessions_on_stop=False),
        UplinkMetrics(registry),
    )
    downlinks = DownlinkService(CONNECTION_ID, config, pool, registry)
    downlinks.topic_filter = PLAIN_FILTER
    async with pool, downlinks:
        async with asyncio.timeout(OPEN_TIMEOUT_SECS):
            while not lns.requests:  # probes until the subscription is in place
                await _publish(broker, 0xFFFFFFFF)
                await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        probes = len(lns.requests)
        lns.respond_with(lambda _request: Answer(delay_secs=args.lns_delay_ms / 1000))
        published, attempted, back_at = await _application(broker, args)
        await asyncio.sleep(SETTLE_SECS)
        recognised = registry.get_sample_value("bridge_downlinks_duplicate_total", {"connection": CONNECTION_ID})
        aws = aws_figures(broker)  # the stand-in restarts with the broker: its figures since the restart
    arrivals: dict[int, list[float]] = {}
    for request in lns.requests[probes:]:
        sequence = int(request.query["Payload"], 16)
        if sequence != 0xFFFFFFFF:
            arrivals.setdefault(sequence, []).append(request.arrived_at)
    after_restart = [at for times in arrivals.values() for at in times if at >= back_at]
    before_outage = [sequence for sequence, at in published.items() if at < back_at - args.outage_secs]
    caught_up = max((min(arrivals[sequence]) for sequence in before_outage if sequence in arrivals), default=back_at)
    return RestartResult(
        rate_per_sec=args.rate,
        duration_secs=args.duration_secs,
        restart_at_secs=args.restart_at_secs,
        outage_secs=args.outage_secs,
        lns_delay_ms=args.lns_delay_ms,
        attempted=attempted,
        published=len(published),
        delivered=len(set(arrivals) & set(published)),
        lost=len(set(published) - set(arrivals)),
        duplicates_at_lns=sum(len(times) - 1 for times in arrivals.values()),
        duplicates_recognised=int(recognised or 0),
        resume_secs=round(min(after_restart, default=float("nan")) - back_at, 3),
        catch_up_secs=round(max(0.0, caught_up - back_at), 3),
        aws=aws,
    )


def run(args: argparse.Namespace) -> RestartResult:
    with tempfile.TemporaryDirectory(prefix="downlink-restart-") as workdir, LocalLns() as lns:
        pki = DevPki(Path(workdir) / "pki")
        with LocalBroker(Path(workdir) / "broker", pki, persistence=True) as broker:
            return asyncio.run(_run(broker, lns, pki, args))


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.downlink_restart", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="downlinks published per second (default 50)")
    parser.add_argument("--duration-secs", type=float, default=20.0, help="how long to publish (default 20)")
    parser.add_argument("--restart-at-secs", type=float, default=8.0, help="when the broker stops (default 8)")
    parser.add_argument("--outage-secs", type=float, default=3.0, help="how long it stays down (default 3)")
    parser.add_argument("--lns-delay-ms", type=float, default=200.0, help="the LNS's answer time (default 200)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"result file (default {DEFAULT_OUTPUT})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> RestartResult:
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
