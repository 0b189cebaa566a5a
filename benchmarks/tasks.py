"""Several bridge tasks as one service: ``make run --tasks 3`` at the seed's rate, counted end to end.

Runs ``python -m devtools --tasks 3 --rate 1000`` (three bridge processes sharing the connection store, behind the
local round-robin load balancer, publishing through the enforcing IoT Core stand-in; the simulated LNSs' signed
ThingPark, ChirpStack and TTS uplinks; a downlink every ``--downlink-every`` seconds) for ``--secs`` and reads its
final summary: uplinks sent, accepted, published and received at mosquitto (none may be lost), the share each task
took, downlinks at the LNS against those published (each once), and what AWS IoT Core would have discarded or
refused (nothing), with the busiest rolling second on one connection.

    python -m benchmarks.tasks [--tasks 3] [--rate 1000] [--devices 100] [--secs 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._harness import goal, print_goals
from bridge_domain.quotas import PUBLISHES_PER_SEC_PER_CONNECTION

DEFAULT_OUTPUT = Path("benchmarks/results/tasks.json")
RUN_MARGIN_SECS = 120  # start-up, drain and stop around the timed part
OFFERED_SHARE_GOAL = 0.98  # the simulated LNSs must offer (nearly) the asked rate for the figure to mean anything


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tasks", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1000.0, help="uplinks per second, all tasks together")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--secs", type=float, default=20.0)
    parser.add_argument("--downlink-every", type=float, default=1.0)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-tasks-") as workdir:
        summary_path = Path(workdir) / "summary.json"
        command = [
            sys.executable, "-m", "devtools", "--state-dir", str(Path(workdir) / "state"),
            "--tasks", str(args.tasks), "--rate", f"{args.rate:g}", "--devices", str(args.devices),
            "--duration", f"{args.secs:g}", "--downlink-every", f"{args.downlink_every:g}",
            "--summary-every", "5", "--summary-json", str(summary_path),
        ]  # fmt: skip
        completed = subprocess.run(command, timeout=args.secs + RUN_MARGIN_SECS, check=False)
        if completed.returncode != 0 or not summary_path.exists():
            raise SystemExit(f"the local run failed with exit code {completed.returncode}")
        summary: dict[str, Any] = json.loads(summary_path.read_text())
    sent, at_broker = summary["lns_sent"], summary["at_broker"]
    refused = sum(count for status, count in summary["lns_statuses"].items() if status != "202")
    by_task = summary["accepted_by_task"]
    aws = summary["aws"]
    goals = {
        "offered_per_sec": goal(
            sent / args.secs, args.rate * OFFERED_SHARE_GOAL, at_most=False, why="the load the figure is about"
        ),
        "lost": goal(sent - at_broker, 0, why="every uplink sent reaches the broker"),
        "refused": goal(refused, 0, why="no 429 or error at this rate"),
        "tasks_without_uplinks": goal(sum(1 for count in by_task if count == 0), 0, why="the balancer spreads"),
        "downlinks_not_once": goal(
            abs(summary["downlinks_at_lns"] - summary["downlinks_published"]), 0, why="shared subscription"
        ),
        "aws_violations": goal(aws["total"], 0, why="nothing AWS IoT Core would discard or refuse"),
        "max_1s_per_connection": goal(aws["max_1s_per_connection"], PUBLISHES_PER_SEC_PER_CONNECTION),
    }
    print_goals("tasks", goals)
    return {
        "tasks": args.tasks,
        "offered_rate_per_sec": args.rate,
        "secs": args.secs,
        "devices": args.devices,
        "lns_sent": sent,
        "accepted": summary["bridge"]["accepted"],
        "published": summary["bridge"]["published"],
        "at_broker": at_broker,
        "delivered_per_sec": at_broker / args.secs,
        "accepted_by_task": by_task,
        "downlinks_published": summary["downlinks_published"],
        "downlinks_at_lns": summary["downlinks_at_lns"],
        "downlinks_sent_by_task": summary["downlinks_sent_by_task"],
        "things_registered": summary["things_registered"],
        "registrations": summary["bridge"]["registrations"],
        "aws": aws,
        "goals": goals,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, write the JSON result file and print it."""
    args = _parse(argv)
    result = run(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: value for key, value in result.items() if key not in ("aws", "goals")}, indent=2))
    return result


if __name__ == "__main__":
    main()
