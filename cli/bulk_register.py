"""Bulk-register the DevEUIs of a CSV file as things, with a progress bar, within the CreateThing quota.

``python -m cli devices.csv --thing-type lorawan-device [--principal-arn ARN] [--rate-per-sec 15]``

The DevEUI column is the one named ``DevEUI`` (any case, ``dev_eui`` too) or else the first column; a file
without a header row works as well. Blank lines and lines starting with ``#`` are skipped. It uses the same
registration code as the bridge, so a second run changes nothing and reports ``exists``. Exit status: 0 when every
DevEUI is registered, 1 when some failed (``--failures FILE`` writes them with their reasons as CSV), 2 for bad
usage.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from botocore.config import Config
from tqdm import tqdm

from bridge_domain.quotas import CREATE_THING_PER_SEC
from bridge_domain.registration import (
    CLIENT_RETRIES,
    RegistrationOutcome,
    RegistrationResult,
    RegistrationSettings,
    register_things,
)
from cli.aws import MissingAwsSetupError, aws_session

CREATE_THING_QUOTA_PER_SEC = CREATE_THING_PER_SEC
_DEV_EUI_HEADERS = frozenset({"deveui", "dev_eui", "dev-eui"})


@dataclass(frozen=True, slots=True)
class CsvRow:
    line: int
    value: str


def read_dev_euis(lines: Iterable[str]) -> list[CsvRow]:
    """The DevEUI cell of every data row, with its line number (header, blank and ``#`` lines skipped)."""
    rows: list[CsvRow] = []
    column: int | None = None
    for line_number, cells in enumerate(csv.reader(lines), start=1):
        stripped = [cell.strip() for cell in cells]
        if not any(stripped) or stripped[0].startswith("#"):
            continue
        if column is None:
            named = [index for index, cell in enumerate(stripped) if cell.lower() in _DEV_EUI_HEADERS]
            column = named[0] if named else 0
            # A header row names the column, or has no digit in its first cell (a mistyped DevEUI has some).
            if named or not any(char.isdigit() for char in stripped[0]):
                continue
        value = stripped[column] if column < len(stripped) else ""
        rows.append(CsvRow(line_number, value))
    return rows


def chunks(values: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def bulk_register(
    iot_client: Any,
    dev_euis: Sequence[str],
    settings: RegistrationSettings,
    *,
    on_chunk: Callable[[list[RegistrationResult]], None] = lambda _results: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[RegistrationResult]:
    """Register in chunks of about one second's worth, reporting each chunk (for the progress bar).

    Each register_things call starts with a fresh one-call burst; pausing 1/rate between chunks keeps the calls
    spaced 1/rate apart across chunk boundaries too, so the quota holds for the whole file.
    """
    chunk_size = max(1, int(settings.max_calls_per_sec))
    results: list[RegistrationResult] = []
    for index, chunk in enumerate(chunks(dev_euis, chunk_size)):
        if index:
            sleep(1 / settings.max_calls_per_sec)
        chunk_results = register_things(iot_client, chunk, settings, clock=clock, sleep=sleep)
        results.extend(chunk_results)
        on_chunk(chunk_results)
    return results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cli", description=__doc__.splitlines()[0])
    parser.add_argument("csv_file", type=Path, help="CSV file with a DevEUI column")
    parser.add_argument("--thing-type", required=True, help="thing type of the things (the stack's thing type)")
    parser.add_argument("--principal-arn", help="certificate ARN to attach to each thing (the bridge certificate)")
    parser.add_argument(
        "--rate-per-sec",
        type=float,
        default=CREATE_THING_QUOTA_PER_SEC,
        help="CreateThing calls per second, at most 15 (the account quota, shared with the bridge)",
    )
    parser.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    parser.add_argument("--profile", help="AWS profile (default: from the AWS configuration)")
    parser.add_argument("--failures", type=Path, help="write the DevEUIs that failed, with reasons, to this CSV")
    return parser


def _write_failures(target: TextIO, failures: Sequence[RegistrationResult]) -> None:
    writer = csv.writer(target)
    writer.writerow(["DevEUI", "reason"])
    writer.writerows([failure.dev_eui, failure.reason or ""] for failure in failures)


def main(argv: Sequence[str] | None = None, *, iot_client: Any = None) -> int:
    """Run the command; ``iot_client`` replaces the boto3 client (tests)."""
    arguments = _parser().parse_args(argv)
    if not 0 < arguments.rate_per_sec <= CREATE_THING_QUOTA_PER_SEC:
        print(f"--rate-per-sec must be > 0 and <= {CREATE_THING_QUOTA_PER_SEC:g}", file=sys.stderr)
        return 2
    try:
        with arguments.csv_file.open(newline="", encoding="utf-8-sig") as source:
            rows = read_dev_euis(source)
    except OSError as exc:
        print(f"cannot read {arguments.csv_file}: {exc.strerror}", file=sys.stderr)
        return 2
    settings = RegistrationSettings(
        thing_type=arguments.thing_type, principal_arn=arguments.principal_arn, max_calls_per_sec=arguments.rate_per_sec
    )
    if iot_client is None:
        try:
            session = aws_session(arguments.profile, arguments.region)
        except MissingAwsSetupError as exc:
            print(exc, file=sys.stderr)
            return 2
        iot_client = session.client("iot", config=Config(retries=dict(CLIENT_RETRIES)))
    with tqdm(total=len(rows), unit="DevEUI", file=sys.stderr) as bar:
        results = bulk_register(
            iot_client, [row.value for row in rows], settings, on_chunk=lambda done: bar.update(len(done))
        )
    counts = Counter(result.outcome for result in results)
    print(", ".join(f"{counts[outcome]} {outcome.value}" for outcome in RegistrationOutcome), file=sys.stderr)
    failures = [result for result in results if result.outcome is RegistrationOutcome.FAILED]
    for row, result in zip(rows, results, strict=True):
        if result.outcome is RegistrationOutcome.FAILED:
            print(f"line {row.line}: {result.reason}", file=sys.stderr)
    if failures and arguments.failures is not None:
        with arguments.failures.open("w", newline="", encoding="utf-8") as target:
            _write_failures(target, failures)
    return 1 if failures else 0
