"""Uplink benchmark: HTTP into the bridge, MQTT out to the local IoT Core (mTLS), counted by a subscriber process.

Runs, each with its own subscriber (``mosquitto_sub`` on the broker's plain observer port):

* ``seed_rate``: single ThingPark POSTs at ``--seed-rate`` msg/s (open loop) through a bridge with the default
  limits (pool of 10, 1000 msg/s aggregate, 100 msg/s per client), publishing through the enforcing IoT Core
  stand-in: delivered rate, HTTP send → subscriber arrival latency, the bridge process's CPU (all threads) per wall
  second, uplinks lost, the most uplinks the subscriber saw in any sliding 1-second window, and from the stand-in
  what AWS would have discarded (by reason and client ID) and the busiest rolling second per connection and in all.
  The bridge paces every limit over 1 s plus a 50 ms jitter margin (``bridge_domain.budget``), so 1000/s offered
  is delivered at ~952/s and the rest waits in the buffer: the goal is that pace, not the offered rate.
* ``headroom``: the same at ``--headroom-rate`` (1500/s, half again the limit) with a buffer of
  ``HEADROOM_BUFFER_SIZE`` so that it fills within the run: the stand-in's busiest rolling second must stay within
  the configured limits (100 per connection, 1000 in all) and the overflow is answered 429, not lost.
* ``ceiling_single`` / ``ceiling_batch``: the same bridge with ``BRIDGE_LIFT_RATE_LIMITS=1``, driven closed-loop by
  keep-alive connections with single POSTs, then with NDJSON batches: the delivered rate is the ceiling. These lift
  AWS's limits on purpose, so they publish to mosquitto's own mTLS listener, not through the stand-in.
* ``qos1_published`` (``--runs qos1``): the seed run and both ceilings again with ``uplinkQos: 1`` and
  ``deliveryAck: published``, so that each 202 waits for the broker's PUBACK: p50/p99 HTTP send → arrival at
  ``--qos1-rate`` (1000/s), the bridge's CPU, and the ceilings (goals: ≥ 5,000 msg/s, p99 ≤ 30 ms).
* ``raw_awscrt``: a bare awscrt MQTT 5 publisher (QoS 0, mTLS, the public API with futures), the baseline; and
  ``stand_in_overhead``: the same publisher through the stand-in's audit listener (the whole proxy path, rules
  counted but not applied), as fast as it goes and paced at ``--overhead-rate``, with the stand-in's CPU.

    python -m benchmarks.uplink [--seed-secs 20] [--headroom-secs 20] [--ceiling-secs 10] [--runs seed,headroom]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import uvloop
from tqdm import tqdm

from benchmarks._harness import (
    Arrival,
    BridgeProcess,
    HttpLoad,
    LoadResult,
    Subscriber,
    aws_figures,
    goal,
    max_in_window,
    per_second,
    percentile,
    post,
    print_goals,
    process_cpu_secs,
    reset_aws_figures,
    running,
)
from bridge_domain.budget import LIMIT_WINDOW_SECS
from devtools.broker import LocalBroker
from devtools.pki import CertPair, DevPki

DEFAULT_OUTPUT = Path("benchmarks/results/uplink.json")
TOPIC_FILTER = "bench/things/+/uplink"
DEVICES = 1_000  # uplinks spread over this many DevEUIs, as a fleet's would be
BATCH_TOKEN = "bench-batch-token"  # noqa: S105 - the local benchmark's own connection
WARMUP_SECS = 2.0  # excluded from rates and CPU: connections warming up, first allocations
SETTLE_SECS = 10.0
RAW_WINDOW = 200  # publishes awaited together by the raw publisher
BACKOFF_SECS = 0.05  # a closed-loop producer's pause after a 429
POOL_SIZE = 10
UPLINK_RATE_PER_SEC = 1000
PER_CLIENT_RATE_PER_SEC = 100
BUFFER_SIZE = 20_000
HEADROOM_BUFFER_SIZE = 5_000  # fills within a 20-s run at 1500/s offered (~550/s more than the pace)
BRIDGE_CPU_GOAL_CORES = 0.25
QOS1_CEILING_GOAL_MSGS_PER_SEC = 5_000
QOS1_P99_GOAL_MS = 30.0


def paced_uplinks_per_sec(outbound_per_sec: float = UPLINK_RATE_PER_SEC) -> float:
    """What the bridge delivers when offered more: every limit holds over ``LIMIT_WINDOW_SECS`` (1 s + margin)."""
    return min(outbound_per_sec, POOL_SIZE * PER_CLIENT_RATE_PER_SEC) / LIMIT_WINDOW_SECS


def drain_timeout_secs(accepted: int, delivered_per_sec: float) -> float:
    """Long enough for a backlog left in the buffer when the load stops to reach the subscriber."""
    return SETTLE_SECS + accepted / delivered_per_sec


def dev_eui(seq: int) -> str:
    return f"70B3D57E{seq % DEVICES:08X}"


def uplink_document(seq: int) -> bytes:
    return b'{"DevEUI_uplink":{"DevEUI":"%s","FPort":1,"FCntUp":%d,"payload_hex":"0102030405060708","LrrRSSI":-71}}' % (
        dev_eui(seq).encode(),
        seq,
    )


def bridge_configuration(
    broker: LocalBroker, cert: CertPair, port: int, buffer_size: int = BUFFER_SIZE, *, published_ack: bool = False
) -> dict[str, Any]:
    """The benchmark's connection; ``published_ack``: QoS 1 uplinks, each answered after its PUBACK."""
    delivery = {"uplinkQos": 1, "deliveryAck": "published"} if published_ack else {}
    return {
        "connectorId": "actility-aws-iot",
        "name": "uplink benchmark",
        "configuration": {
            "deviceType": "bench-sensor",
            "region": "eu-central-1",
            "certificateId": "ef" * 32,
            "certificate": cert.cert_pem,
            "privateKey": cert.key_pem,
            "broker": {"host": broker.host, "port": port, "caCertificate": broker.pki.ca.cert_pem},
            "uplinkTopicPattern": "bench/things/{DevEUI}/uplink",
            "poolSize": POOL_SIZE,
            "uplinkRatePerSec": UPLINK_RATE_PER_SEC,
            "perClientRatePerSec": PER_CLIENT_RATE_PER_SEC,
            "bufferSize": buffer_size,
            "registerThings": False,
            "downlinkEnabled": False,
            "batchIngressToken": BATCH_TOKEN,
            **delivery,
        },
    }


# --- load shapes ----------------------------------------------------------------------------------------------
def _recorder(result: LoadResult, seqs: range, sent_at: float) -> Callable[[int], None]:
    def done(status: int) -> None:
        result.count(status)
        if status == 202:
            for seq in seqs:
                result.sent[seq] = sent_at

    return done


def thingpark_request(seq: int) -> bytes:
    """The POST of uplink ``seq`` as ThingPark sends it to a connection without an AS key (no Token)."""
    return post("/uplinks/thingpark", uplink_document(seq))


async def open_loop(
    port: int,
    rate: float,
    duration_secs: float,
    progress: tqdm[Any],
    request: Callable[[int], bytes] = thingpark_request,
) -> LoadResult:
    """Single POSTs (``request(seq)``) at ``rate`` a second, on schedule whatever the answers take."""
    result = LoadResult()
    loop = asyncio.get_running_loop()
    total = int(rate * duration_secs)
    async with HttpLoad(port, connections=16) as load:
        start = loop.time()
        for seq in range(total):
            delay = start + seq / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await load.request(request(seq), _recorder(result, range(seq, seq + 1), time.time()))
            result.requests += 1
            if seq % 500 == 0:
                progress.update(500)
        await load.idle()
    return result


async def closed_loop(port: int, duration_secs: float, batch: int, connections: int, progress: tqdm[Any]) -> LoadResult:
    """Each connection sends its next request as soon as the previous one is answered."""
    result = LoadResult()
    loop = asyncio.get_running_loop()
    end = loop.time() + duration_secs
    next_seq = 0
    auth = f"Authorization: Bearer {BATCH_TOKEN}\r\n"

    async def worker(load: HttpLoad) -> None:
        nonlocal next_seq
        while loop.time() < end:
            seqs = range(next_seq, next_seq + batch)
            next_seq += batch
            if batch == 1:
                request = post("/uplinks/thingpark", uplink_document(seqs[0]))
            else:
                request = post("/uplinks/batch", b"\n".join(uplink_document(seq) for seq in seqs), auth)
            answered = loop.create_future()
            record = _recorder(result, seqs, time.time())

            def done(status: int, record: Callable[[int], None] = record, answered: Any = answered) -> None:
                record(status)
                answered.set_result(None)

            await load.request(request, done)
            await answered
            result.requests += 1
            progress.update(batch)
            if result.sent.get(seqs[-1]) is None:
                await asyncio.sleep(BACKOFF_SECS)  # 429: back off a little, as a producer would

    async with HttpLoad(port, connections=connections) as load:
        await asyncio.gather(*(worker(load) for _ in range(connections)))
    return result


# --- runs ------------------------------------------------------------------------------------------------------
def summarise(
    result: LoadResult, arrivals: list[Arrival], window: tuple[float, float], *, end_to_end: bool = False
) -> dict[str, Any]:
    """Rates, latency and losses of one run.

    ``achieved_msgs_per_sec``: arrivals inside ``window`` per second (steady state at a fixed offered rate); with
    ``end_to_end`` (ceilings), every accepted uplink delivered divided by the time from the first request to the
    last arrival, so a backlog drained after the load stops counts against the rate, not for it.
    """
    received = {arrival.seq: arrival.at for arrival in arrivals if arrival.seq in result.sent}
    latencies = [(received[seq] - sent) * 1000 for seq, sent in result.sent.items() if seq in received]
    start, end = window
    if end_to_end:
        last = max(received.values(), default=end)
        achieved = len(received) / (last - start)
    else:
        achieved = sum(1 for at in received.values() if start <= at < end) / (end - start)
    return {
        "achieved_msgs_per_sec": round(achieved, 1),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "accepted": len(result.sent),
        "lost": len(result.sent) - len(received),
        "http_statuses": {str(status): count for status, count in sorted(result.statuses.items())},
        "max_1s_window_msgs": max_in_window(list(received.values())),
    }


def run_seed(broker: LocalBroker, config: Path, workdir: Path, rate: float, secs: float) -> dict[str, Any]:
    with running(BridgeProcess(config, workdir)) as bridge:
        subscriber = Subscriber(broker, TOPIC_FILTER, workdir).start()
        reset_aws_figures(broker)
        with tqdm(total=int(rate * secs), desc=f"seed {rate:g} msg/s", unit="msg") as progress:
            started = time.time()
            cpu_marks: list[tuple[float, float, float]] = []

            async def drive() -> LoadResult:
                task = asyncio.get_running_loop().create_task(open_loop(bridge.port, rate, secs, progress))
                await asyncio.sleep(WARMUP_SECS)
                cpu_marks.append((time.monotonic(), bridge.cpu_secs(), process_cpu_secs(broker.stand_in_pid)))
                result = await task
                cpu_marks.append((time.monotonic(), bridge.cpu_secs(), process_cpu_secs(broker.stand_in_pid)))
                return result

            result = uvloop.run(drive())
            ended = time.time()
        subscriber.wait_quiet(len(result.sent) + 1, drain_timeout_secs(len(result.sent), paced_uplinks_per_sec()))
        arrivals = subscriber.stop()
        aws = aws_figures(broker)
    (wall_start, cpu_start, stand_in_start), (wall_end, cpu_end, stand_in_end) = cpu_marks
    summary = summarise(result, arrivals, (started + WARMUP_SECS, ended))
    summary = {
        "target_msgs_per_sec": rate,
        **summary,
        "bridge_cpu_core_fraction": round((cpu_end - cpu_start) / (wall_end - wall_start), 3),
        "stand_in_cpu_core_fraction": round((stand_in_end - stand_in_start) / (wall_end - wall_start), 3),
        "aws": aws,
    }
    summary["goals"] = uplink_goals(summary, rate)
    summary["_series"] = per_second([arrival.at for arrival in arrivals], started)
    return summary


def uplink_goals(summary: dict[str, Any], offered_per_sec: float) -> dict[str, dict[str, Any]]:
    """The figures an uplink run through the stand-in must reach; the rate is the budget's pace, not 1000/s."""
    aws = summary["aws"]
    paced = round(paced_uplinks_per_sec(), 1)
    expected = min(offered_per_sec, paced)
    return {
        "violations": goal(aws["violations"], 0),
        "lost": goal(summary["lost"], 0),
        "max_1s_window_per_connection": goal(aws["max_1s_window_per_connection"], PER_CLIENT_RATE_PER_SEC),
        "max_1s_window_aggregate": goal(aws["max_1s_window_aggregate"], UPLINK_RATE_PER_SEC),
        "achieved_msgs_per_sec": goal(
            summary["achieved_msgs_per_sec"],
            round(0.98 * expected, 1),
            at_most=False,
            why=f"every limit holds over {LIMIT_WINDOW_SECS:g} s (1 s + jitter margin): {UPLINK_RATE_PER_SEC}/s "
            f"paces at {paced:g}/s; within 2% of min(offered, that)",
        ),
        "bridge_cpu_core_fraction": goal(summary["bridge_cpu_core_fraction"], BRIDGE_CPU_GOAL_CORES),
    }


def run_ceilings(
    broker: LocalBroker, config: Path, workdir: Path, secs: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    results = []
    bridge = BridgeProcess(config, workdir, extra_env={"BRIDGE_LIFT_RATE_LIMITS": "1"})
    with running(bridge):
        for label, batch, connections in (("single", 1, 32), ("batch", 100, 8)):
            subscriber = Subscriber(broker, TOPIC_FILTER, workdir).start()
            with tqdm(desc=f"ceiling {label}", unit="msg") as progress:
                started = time.time()
                result = uvloop.run(closed_loop(bridge.port, secs, batch, connections, progress))
                ended = time.time()
            subscriber.wait_quiet(len(result.sent) + 1, SETTLE_SECS)
            arrivals = subscriber.stop()
            summary = summarise(result, arrivals, (started, ended), end_to_end=True)
            summary["batch_size"] = batch
            summary["connections"] = connections
            summary["_series"] = per_second([arrival.at for arrival in arrivals], started)
            results.append(summary)
    return results[0], results[1]


def run_qos1(
    broker: LocalBroker, cert: CertPair, workdir: Path, rate: float, secs: float, ceiling_secs: float
) -> dict[str, Any]:
    """The seed run and the ceilings with QoS 1 uplinks answered after their PUBACK (``deliveryAck: published``)."""
    config, ceiling_config = workdir / "connection-qos1.json", workdir / "connection-qos1-ceiling.json"
    config.write_bytes(orjson.dumps(bridge_configuration(broker, cert, broker.ports.tls, published_ack=True)))
    ceiling_config.write_bytes(
        orjson.dumps(bridge_configuration(broker, cert, broker.ports.tls_unenforced, published_ack=True))
    )
    seed = run_seed(broker, config, workdir, rate, secs)
    seed.pop("_series")
    seed.pop("goals")
    single, batch = run_ceilings(broker, ceiling_config, workdir, ceiling_secs)
    single.pop("_series")
    batch.pop("_series")
    best_ceiling = max(single["achieved_msgs_per_sec"], batch["achieved_msgs_per_sec"])
    return {
        "at_rate": seed,
        "ceiling_single": single,
        "ceiling_batch": batch,
        "goals": {
            "lost": goal(seed["lost"], 0),
            "violations": goal(seed["aws"]["violations"], 0),
            "p99_ms": goal(seed["p99_ms"], QOS1_P99_GOAL_MS),
            "ceiling_msgs_per_sec": goal(best_ceiling, QOS1_CEILING_GOAL_MSGS_PER_SEC, at_most=False),
            "bridge_cpu_core_fraction": goal(seed["bridge_cpu_core_fraction"], BRIDGE_CPU_GOAL_CORES),
        },
    }


def _raw_publisher(host: str, port: int, ca: str, cert: str, key: str, count: int, rate: float | None) -> None:
    """A bare awscrt MQTT 5 publisher, as an application would write one with the public API.

    As fast as it goes (``rate`` None), or paced at ``rate`` a second, one publish at a time.
    """
    import awscrt.mqtt5 as mqtt5
    from awsiot import mqtt5_client_builder

    async def publish() -> None:
        loop = asyncio.get_running_loop()
        connected = asyncio.Event()
        client = mqtt5_client_builder.mtls_from_path(
            cert,
            key,
            endpoint=host,
            port=port,
            ca_filepath=ca,
            client_id="raw-awscrt-bench",
            extended_validation_and_flow_control_options=mqtt5.ExtendedValidationAndFlowControlOptions.NONE,
            on_lifecycle_connection_success=lambda _data: loop.call_soon_threadsafe(connected.set),
        )
        client.start()
        await connected.wait()
        pending = []
        start = loop.time()
        for seq in range(count):
            if rate is not None:
                delay = start + seq / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            topic = f"bench/things/{dev_eui(seq)}/uplink"
            packet = mqtt5.PublishPacket(topic=topic, payload=uplink_document(seq), qos=mqtt5.QoS.AT_MOST_ONCE)
            pending.append(asyncio.wrap_future(client.publish(packet)))
            if len(pending) >= RAW_WINDOW:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        client.stop()

    uvloop.run(publish())


def run_raw(
    broker: LocalBroker, cert: CertPair, workdir: Path, count: int, rate: float | None = None, port: int | None = None
) -> dict[str, Any]:
    """The bare publisher to ``port`` (default: mosquitto's own mTLS listener, no stand-in on the way)."""
    subscriber = Subscriber(broker, TOPIC_FILTER, workdir).start()
    files = (str(broker.ca_file), str(cert.cert_path), str(cert.key_path))
    target_port = port or broker.ports.tls_unenforced
    process = multiprocessing.get_context("spawn").Process(
        target=_raw_publisher, args=(broker.host, target_port, *files, count, rate)
    )
    started = time.time()
    via = " via the stand-in" if target_port == broker.ports.audit else ""
    label = f"raw awscrt{via}, {count} msgs" + (f" at {rate:g}/s" if rate else "")
    with tqdm(total=1, desc=label, unit="run") as progress:
        cpu_start = process_cpu_secs(broker.stand_in_pid)
        process.start()
        process.join(timeout=120)
        subscriber.wait_quiet(count + 1, SETTLE_SECS)
        stand_in_cpu_secs = process_cpu_secs(broker.stand_in_pid) - cpu_start
        progress.update(1)
    arrivals = subscriber.stop()
    times = sorted(arrival.at for arrival in arrivals)
    span_secs = times[-1] - times[0] if len(times) > 1 else 0.0
    return {
        "msgs_per_sec": round((len(times) - 1) / span_secs, 1) if span_secs else 0.0,
        "delivered": len(times),
        "max_1s_window_msgs": max_in_window(times),
        # the stand-in's CPU (its whole process: TLS, parsing, accounting) over the span messages were delivered
        "stand_in_cpu_core_fraction": round(stand_in_cpu_secs / span_secs, 3) if span_secs else 0.0,
        "stand_in_cpu_us_per_msg": round(stand_in_cpu_secs / len(times) * 1e6, 1) if times else 0.0,
        "_series": per_second(times, started),
    }


def run_stand_in_overhead(
    broker: LocalBroker, cert: CertPair, workdir: Path, count: int, rate: float, direct_msgs_per_sec: float
) -> dict[str, Any]:
    """The raw publisher through the stand-in (audit listener: full proxy path, nothing dropped), fast and paced."""
    fast = run_raw(broker, cert, workdir, count, port=broker.ports.audit)
    fast.pop("_series")
    paced = run_raw(broker, cert, workdir, int(rate * 8), rate, port=broker.ports.audit)
    paced.pop("_series")
    return {
        "raw_direct_msgs_per_sec": direct_msgs_per_sec,
        "raw_via_stand_in_msgs_per_sec": fast["msgs_per_sec"],
        "ratio_via_stand_in_to_direct": round(fast["msgs_per_sec"] / direct_msgs_per_sec, 3)
        if direct_msgs_per_sec
        else None,
        "stand_in_cpu_core_fraction_at_full_speed": fast["stand_in_cpu_core_fraction"],
        "stand_in_cpu_us_per_msg_at_full_speed": fast["stand_in_cpu_us_per_msg"],
        "paced": {
            "target_msgs_per_sec": rate,
            "achieved_msgs_per_sec": paced["msgs_per_sec"],
            "delivered": paced["delivered"],
            "max_1s_window_msgs": paced["max_1s_window_msgs"],
            "stand_in_cpu_core_fraction": paced["stand_in_cpu_core_fraction"],
        },
    }


# --- output ----------------------------------------------------------------------------------------------------
def plot(series: dict[str, list[int]], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 5))
    for label, counts in series.items():
        axes.plot(range(len(counts)), counts, marker=".", label=label)
    axes.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"limit {target:g} msg/s")
    axes.set_xlabel("seconds since the run started")
    axes.set_ylabel("uplinks delivered per second (subscriber)")
    axes.set_title("aws-iot-bridge uplinks: HTTP → bridge → mosquitto (mTLS)")
    axes.set_yscale("log")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_at_start = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="uplink-bench-") as tmp:
        workdir = Path(tmp)
        pki = DevPki(workdir / "pki")
        with LocalBroker(workdir / "broker", pki) as broker:
            bridge_cert, publisher_cert = pki.client("bench-bridge"), pki.client("bench-publisher")
            # The seed run publishes through the enforcing stand-in, as to AWS; the ceilings lift the limits on
            # purpose and go to mosquitto's own mTLS listener.
            config, ceiling_config = workdir / "connection.json", workdir / "connection-ceiling.json"
            config.write_bytes(orjson.dumps(bridge_configuration(broker, bridge_cert, broker.ports.tls)))
            headroom_config = workdir / "connection-headroom.json"
            headroom_config.write_bytes(
                orjson.dumps(bridge_configuration(broker, bridge_cert, broker.ports.tls, HEADROOM_BUFFER_SIZE))
            )
            ceiling_config.write_bytes(
                orjson.dumps(bridge_configuration(broker, bridge_cert, broker.ports.tls_unenforced))
            )
            skipped: dict[str, Any] = {"achieved_msgs_per_sec": 0.0, "_series": []}
            raw: dict[str, Any] = (
                run_raw(broker, publisher_cert, workdir, args.raw_count)
                if "raw" in args.runs
                else {"msgs_per_sec": 0.0, "_series": []}
            )
            overhead = (
                run_stand_in_overhead(
                    broker, publisher_cert, workdir, args.raw_count, args.overhead_rate, raw["msgs_per_sec"]
                )
                if "overhead" in args.runs
                else {}
            )
            seed = (
                run_seed(broker, config, workdir, args.seed_rate, args.seed_secs)
                if "seed" in args.runs
                else {**skipped, "target_msgs_per_sec": args.seed_rate}
            )
            if "seed" in args.runs:
                # The same rate from a bare publisher, paced one by one: how much delivery jitter alone adds to
                # the largest 1-second window the subscriber sees.
                paced = run_raw(broker, publisher_cert, workdir, int(args.seed_rate * 8), args.seed_rate)
                seed["reference_paced_raw_max_1s_window_msgs"] = paced["max_1s_window_msgs"]
            headroom = (
                run_seed(broker, headroom_config, workdir, args.headroom_rate, args.headroom_secs)
                if "headroom" in args.runs
                else {**skipped, "target_msgs_per_sec": args.headroom_rate}
            )
            if "headroom" in args.runs:
                headroom["buffer_size"] = HEADROOM_BUFFER_SIZE
            single, batch = (
                run_ceilings(broker, ceiling_config, workdir, args.ceiling_secs)
                if "ceiling" in args.runs
                else (dict(skipped), dict(skipped))
            )
            qos1 = (
                run_qos1(broker, bridge_cert, workdir, args.qos1_rate, args.seed_secs, args.ceiling_secs)
                if "qos1" in args.runs
                else {}
            )
    series = {
        "seed rate (limits on)": seed.pop("_series"),
        f"{args.headroom_rate:g}/s offered (limits on)": headroom.pop("_series"),
        "ceiling, single POSTs": single.pop("_series"),
        "ceiling, batches": batch.pop("_series"),
        "raw awscrt publisher": raw.pop("_series"),
    }
    best_ceiling = max(single["achieved_msgs_per_sec"], batch["achieved_msgs_per_sec"])
    result = {
        "seed_rate": seed,
        "headroom": headroom,
        "ceiling_single": single,
        "ceiling_batch": batch,
        "raw_awscrt_msgs_per_sec": raw["msgs_per_sec"],
        "stand_in_overhead": overhead,
        "ratio_ceiling_to_raw": round(best_ceiling / raw["msgs_per_sec"], 3) if raw["msgs_per_sec"] else None,
        "qos1_published": qos1,
        "machine": {"cpus": os.cpu_count(), "load_average_1m_at_start": load_at_start},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    plot(series, seed["target_msgs_per_sec"], args.output.with_suffix(".png"))
    return result


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.uplink", description=__doc__)
    parser.add_argument("--seed-rate", type=float, default=1000.0, help="offered single POSTs per second")
    parser.add_argument("--seed-secs", type=float, default=20.0, help="duration of the seed-rate run")
    parser.add_argument("--headroom-rate", type=float, default=1500.0, help="offered POSTs/s of the headroom run")
    parser.add_argument("--headroom-secs", type=float, default=20.0, help="duration of the headroom run")
    parser.add_argument("--ceiling-secs", type=float, default=10.0, help="duration of each ceiling run")
    parser.add_argument("--raw-count", type=int, default=100_000, help="publishes of the raw awscrt baseline")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"result file (default {DEFAULT_OUTPUT})")
    parser.add_argument(
        "--overhead-rate", type=float, default=1100.0, help="paced rate of the stand-in overhead run (default 1100)"
    )
    parser.add_argument(
        "--runs",
        default="raw,overhead,seed,headroom,ceiling,qos1",
        help="comma-separated subset of raw,overhead,seed,headroom,ceiling,qos1 (default: all; overhead needs raw)",
    )
    parser.add_argument(
        "--qos1-rate", type=float, default=1000.0, help="offered POSTs/s of the QoS 1 deliveryAck: published run"
    )
    args = parser.parse_args(argv)
    args.runs = set(args.runs.split(","))
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, write the JSON result and the PNG plot beside it, and print the result."""
    args = _parse(argv)
    result = run(args)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    for name in ("seed_rate", "headroom"):
        if "goals" in result[name]:
            print_goals(f"uplink {name}", result[name]["goals"])
    if "goals" in result["qos1_published"]:
        print_goals("uplink qos1_published", result["qos1_published"]["goals"])
    return result


if __name__ == "__main__":
    main()
