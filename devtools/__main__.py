"""``make run`` / ``python -m devtools``: the whole bridge on this machine, with a simulated LNS."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

from bridge_container.exceptions import MqttError
from bridge_domain.lns import LnsKind
from devtools.broker import BrokerError
from devtools.runner import LocalRunError, RunOptions, run
from devtools.simulator import DEFAULT_MIX, LNS_KINDS


def _positive(kind: type[float] | type[int]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _mix(text: str) -> dict[LnsKind, int]:
    """``thingpark=50,chirpstack=30,tts=20`` → weights per LNS (missing kinds get 0)."""
    weights: dict[LnsKind, int] = dict.fromkeys(LNS_KINDS, 0)
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in LNS_KINDS or not weight.strip().isdigit():
            raise argparse.ArgumentTypeError(f"expected e.g. thingpark=50,chirpstack=30,tts=20, got {text!r}")
        weights[cast(LnsKind, name.strip())] = int(weight)
    if not any(weights.values()):
        raise argparse.ArgumentTypeError("at least one LNS needs a positive weight")
    return weights


def parse_args(argv: Sequence[str] | None = None) -> RunOptions:
    parser = argparse.ArgumentParser(
        prog="make run RUN_ARGS=...",
        description="mosquitto (IoT Core's stand-in), moto, the bridge and a simulated LNS on 127.0.0.1.",
    )
    parser.add_argument("--rate", type=_positive(float), default=20.0, help="uplinks per second (default 20)")
    parser.add_argument("--devices", type=_positive(int), default=20, help="simulated devices (default 20)")
    parser.add_argument(
        "--duration", type=_positive(float), default=None, help="seconds to run (default: until Ctrl-C)"
    )
    default_mix = ",".join(f"{kind}={weight}" for kind, weight in DEFAULT_MIX.items())
    parser.add_argument("--mix", type=_mix, default=dict(DEFAULT_MIX), help=f"LNS shares (default {default_mix})")
    parser.add_argument(
        "--downlink-every", type=float, default=5.0, help="seconds between downlinks published on MQTT (0: none)"
    )
    parser.add_argument("--summary-every", type=_positive(float), default=2.0, help="seconds between summary lines")
    parser.add_argument("--state-dir", type=Path, default=Path(".state"), help="dev CA, ports, store (default .state)")
    parser.add_argument("--summary-json", type=Path, default=None, help="write the final totals here as JSON")
    parser.add_argument(
        "--tasks", type=_positive(int), default=1, help="bridge tasks behind a local load balancer (default 1)"
    )
    args = parser.parse_args(argv)
    return RunOptions(
        rate_per_sec=args.rate,
        devices=args.devices,
        duration_secs=args.duration,
        mix=args.mix,
        downlink_every_secs=args.downlink_every,
        summary_every_secs=args.summary_every,
        state_dir=args.state_dir,
        summary_json=args.summary_json,
        tasks=int(args.tasks),
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request at INFO
    try:
        return asyncio.run(run(options))
    except (LocalRunError, BrokerError, MqttError) as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
