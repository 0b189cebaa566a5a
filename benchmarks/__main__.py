"""``python -m benchmarks [NAME ...]``: run every benchmark module (or the named ones), each in its own process.

A benchmark is a module ``benchmarks/<name>.py`` (no leading underscore) with ``main(argv) -> object`` that writes
``benchmarks/results/<name>.json``; dropping a new module beside the others adds it to the run.
"""

from __future__ import annotations

import argparse
import pkgutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Listed first when present; any other benchmark module runs after them, alphabetically.
PREFERRED_ORDER = ("uplink", "downlink")


def discover() -> list[str]:
    names = [
        info.name
        for info in pkgutil.iter_modules([str(PACKAGE_DIR)])
        if not info.name.startswith("_") and not info.ispkg
    ]
    return sorted(names, key=lambda name: (PREFERRED_ORDER.index(name) if name in PREFERRED_ORDER else 99, name))


def main(argv: Sequence[str] | None = None) -> int:
    available = discover()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(available)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(available))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available)}")
    failed = []
    durations: list[str] = []
    started = time.monotonic()
    for name in args.names or available:
        print(f"== benchmark {name}", flush=True)
        began = time.monotonic()
        if subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], check=False).returncode != 0:
            failed.append(name)
        durations.append(f"{name} {time.monotonic() - began:.0f} s")
    print(f"== took {time.monotonic() - started:.0f} s ({', '.join(durations)})", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
