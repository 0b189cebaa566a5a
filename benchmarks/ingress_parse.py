"""Ingress CPU per uplink: authenticate, parse, validate and render, without HTTP or MQTT.

Each LNS's documents (the simulated LNSs' full wire format, 100,000 by default, built before timing) go through
one connection's :class:`~bridge_container.ingress.pipeline.UplinkIngress` into a sink that keeps nothing. The best
of ``--repeat`` runs is reported in µs per document: ``thingpark_signed`` checks the Token with an AS key (each
document signed, so each is new to the replay check), ``thingpark`` has no AS key.

    python -m benchmarks.ingress_parse [--documents 100000] [--repeat 3] [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge_container.ingress.pipeline import UplinkIngress
from bridge_container.metrics import UplinkMetrics, new_registry
from bridge_container.mqtt.port import UserProperties
from bridge_container.registration import NullRegistrar
from bridge_domain.connection import ConnectionConfiguration
from bridge_domain.lns import LnsKind
from devtools.simulator import LnsEndpoint, build_fleet, prepare_uplink

AS_KEY = "00112233445566778899aabbccddeeff"
CHIRPSTACK_TOKEN = "chirpstack-bench"  # noqa: S105 - a benchmark's own secret
TTS_TOKEN = "tts-bench"  # noqa: S105
DEVICES = 100
RESULTS = Path(__file__).resolve().parent / "results" / "ingress_parse.json"


class DiscardingSink:
    """Takes every uplink and keeps none (the pool is not what is measured)."""

    free = 1_000_000_000
    depth = 0

    def submit(self, topic: str, payload: bytes, properties: UserProperties = (), waiter: Any = None) -> bool:
        return True

    def submit_many(self, items: list[tuple[str, bytes, UserProperties]], count: int, waiters: Any = None) -> bool:
        return True


def configuration(as_key: str | None) -> ConnectionConfiguration:
    thingpark: dict[str, Any] = {"kind": "thingpark", "asId": "bench-as", "maxTimeDriftSecs": 3600}
    if as_key is not None:
        thingpark["asKey"] = as_key
    return ConnectionConfiguration.model_validate(
        {
            "deviceType": "sensor",
            "region": "eu-central-1",
            "protocol": "WSS",
            "accountPrefix": "a1b2c3d4e5f6-ats",
            "lns": [
                thingpark,
                {"kind": "chirpstack", "ingressToken": CHIRPSTACK_TOKEN, "apiUrl": "https://cs.example.com/api"},
                {"kind": "tts", "ingressToken": TTS_TOKEN, "apiUrl": "https://eu1.example.com", "applicationId": "a"},
            ],
        }
    )


Request = tuple[bytes, bytes, bytes | None]


def documents(kind: LnsKind, count: int, secret: str | None) -> list[Request]:
    """``count`` requests of one LNS (body, query, Authorization), as the simulated LNS sends them."""
    rng = random.Random(11)
    fleet = build_fleet(DEVICES, {kind: 1})
    endpoint = LnsEndpoint(kind, f"/uplinks/{kind}", secret, as_id="bench-as")
    requests: list[Request] = []
    for number in range(count):
        prepared = prepare_uplink(fleet[number % DEVICES], endpoint, rng)
        _, _, query = prepared.target.partition("?")
        authorization = prepared.headers.get("Authorization")
        requests.append((prepared.body, query.encode(), authorization.encode() if authorization else None))
    return requests


async def run_once(lns: str, as_key: str | None, requests: list[Request]) -> float:
    ingress = UplinkIngress(
        "bench", configuration(as_key), DiscardingSink(), UplinkMetrics(new_registry()), NullRegistrar(), None
    )
    handle = ingress.handle
    started = time.perf_counter()
    for body, query, authorization in requests:
        result = await handle(lns, body, query=query, authorization=authorization)
        if result.status != 202:
            raise SystemExit(f"{lns}: {result.status} {result.body!r}")
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingress_parse", description=__doc__)
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    cases: dict[str, tuple[LnsKind, str | None, str | None]] = {
        "thingpark_signed": ("thingpark", AS_KEY, AS_KEY),
        "thingpark": ("thingpark", None, None),
        "chirpstack": ("chirpstack", None, CHIRPSTACK_TOKEN),
        "tts": ("tts", None, TTS_TOKEN),
    }
    figures: dict[str, float] = {}
    for name, (lns, as_key, secret) in cases.items():
        requests = documents(lns, args.documents, secret)
        best = min(asyncio.run(run_once(lns, as_key, requests)) for _ in range(args.repeat))
        figures[f"{name}_us_per_document"] = round(best / len(requests) * 1e6, 2)
        print(f"{name:>17}: {figures[f'{name}_us_per_document']:6.2f} µs per document", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    main()
