"""What the console's live view costs the uplink path: the ingress with no page open, and with the capture tap in.

The same ChirpStack documents (the simulated LNS's wire format, built before timing) go through one connection's
:class:`~bridge_container.ingress.pipeline.UplinkIngress` into a sink that keeps nothing: once as the bridge runs
with no console page open (the ingress hands uplinks straight to the sink), once with the live view's
:class:`~bridge_container.console.capture.UplinkWatch` touched (the tap between ingress and sink, keeping the last
50). Runs alternate, and the best of ``--repeat`` is reported in µs per document; ``tap_submit_ns`` is the tap's
own cost per call, measured on ``submit`` alone.

    python -m benchmarks.console_capture [--documents 100000] [--repeat 5] [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.ingress_parse import CHIRPSTACK_TOKEN, DiscardingSink, Request, configuration, documents
from bridge_container.console.capture import UplinkTap, UplinkWatch
from bridge_container.ingress.pipeline import UplinkIngress
from bridge_container.metrics import UplinkMetrics, new_registry
from bridge_container.registration import NullRegistrar

RESULTS = Path(__file__).resolve().parent / "results" / "console_capture.json"
SUBMIT_CALLS = 1_000_000


async def run_once(requests: list[Request], *, watched: bool) -> float:
    sink = DiscardingSink()
    ingress = UplinkIngress("bench", configuration(None), sink, UplinkMetrics(new_registry()), NullRegistrar(), None)
    watch = UplinkWatch(ingress, sink, idle_secs=3600)
    if watched:
        watch.touch()
    handle = ingress.handle
    started = time.perf_counter()
    for body, query, authorization in requests:
        result = await handle("chirpstack", body, query=query, authorization=authorization)
        if result.status != 202:
            raise SystemExit(f"chirpstack: {result.status} {result.body!r}")
    elapsed = time.perf_counter() - started
    if watched and len(watch.tap.ring) != min(len(requests), 50):
        raise SystemExit("the tap did not capture the uplinks")
    watch.detach()
    return elapsed


def submit_ns(target: DiscardingSink | UplinkTap) -> float:
    submit = target.submit
    payload = b'{"DevEUI_uplink": {}}'
    started = time.perf_counter()
    for _ in range(SUBMIT_CALLS):
        submit("tpx/things/0000000000000001/uplink", payload)
    return (time.perf_counter() - started) / SUBMIT_CALLS * 1e9


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.console_capture", description=__doc__)
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    requests = documents("chirpstack", args.documents, CHIRPSTACK_TOKEN)
    closed: list[float] = []
    opened: list[float] = []
    for _ in range(args.repeat):  # alternated, so a change in the machine's load hits both alike
        closed.append(asyncio.run(run_once(requests, watched=False)))
        opened.append(asyncio.run(run_once(requests, watched=True)))
    sink = DiscardingSink()
    figures = {
        "no_page_us_per_document": round(min(closed) / len(requests) * 1e6, 3),
        "live_view_open_us_per_document": round(min(opened) / len(requests) * 1e6, 3),
        "sink_submit_ns": round(min(submit_ns(sink) for _ in range(args.repeat)), 1),
        "tap_submit_ns": round(min(submit_ns(UplinkTap(sink)) for _ in range(args.repeat)), 1),
    }
    figures["live_view_extra_percent"] = round(
        (figures["live_view_open_us_per_document"] / figures["no_page_us_per_document"] - 1) * 100, 1
    )
    for name, value in figures.items():
        print(f"{name:>32}: {value}", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    main()
