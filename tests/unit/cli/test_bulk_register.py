"""The bulk-register command: CSV reading, progress, exit status and the quota across chunks."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge_domain.registration import RegistrationOutcome, RegistrationSettings
from cli.bulk_register import bulk_register, main, read_dev_euis
from tests.unit.lambdas.support import FakeClock, max_calls_in_any_second


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "DevEUI,name\n70B3D57ED0000001,pump\n70B3D57ED0000002,valve\n",
            [(2, "70B3D57ED0000001"), (3, "70B3D57ED0000002")],
        ),
        ("name,dev_eui\npump,70b3d57ed0000001\n", [(2, "70b3d57ed0000001")]),
        ("70B3D57ED0000001\n\n# spare\n70B3D57ED0000002\n", [(1, "70B3D57ED0000001"), (4, "70B3D57ED0000002")]),
        ("device\n70B3D57ED00000\n", [(2, "70B3D57ED00000")]),
        ("70B3D57ED00000\n70B3D57ED0000002\n", [(1, "70B3D57ED00000"), (2, "70B3D57ED0000002")]),
    ],
    ids=["named-column", "other-spelling", "no-header", "header-without-name", "mistyped-first-row-kept"],
)
def test_reads_the_dev_eui_column_with_line_numbers(text: str, expected: list[tuple[int, str]]) -> None:
    rows = read_dev_euis(text.splitlines(keepends=True))

    assert [(row.line, row.value) for row in rows] == expected


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as target:
        csv.writer(target).writerows(rows)
    return path


def test_registers_the_file_then_a_second_run_changes_nothing(
    iot: Any, thing_type: str, certificate_arn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_csv(tmp_path / "devices.csv", [["DevEUI"], *[[f"70B3D57ED000000{n}"] for n in range(1, 6)]])
    arguments = [str(source), "--thing-type", thing_type, "--principal-arn", certificate_arn]

    first = main(arguments, iot_client=iot)
    first_output = capsys.readouterr().err
    second = main(arguments, iot_client=iot)
    second_output = capsys.readouterr().err

    assert (first, second) == (0, 0)
    assert "5 created, 0 exists, 0 failed" in first_output
    assert "5/5" in first_output  # the progress bar reached the end
    assert "0 created, 5 exists, 0 failed" in second_output
    assert len(iot.list_things()["things"]) == 5
    assert iot.list_thing_principals(thingName="70B3D57ED0000005")["principals"] == [certificate_arn]


def test_failures_are_reported_by_line_and_written_out(
    iot: Any, thing_type: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_csv(tmp_path / "devices.csv", [["DevEUI"], ["70B3D57ED0000001"], ["70B3D57ED00000ZZ"]])
    failures = tmp_path / "failures.csv"

    status = main([str(source), "--thing-type", thing_type, "--failures", str(failures)], iot_client=iot)

    assert status == 1
    assert "line 3: DevEUI must be 16 hexadecimal digits" in capsys.readouterr().err
    with failures.open(newline="") as written:
        assert list(csv.reader(written))[1][0] == "70B3D57ED00000ZZ"


@pytest.mark.parametrize("rate", ["0", "16"])
def test_a_rate_above_the_quota_is_refused(tmp_path: Path, rate: str, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_csv(tmp_path / "devices.csv", [["70B3D57ED0000001"]])

    assert main([str(source), "--thing-type", "t", "--rate-per-sec", rate], iot_client=object()) == 2
    assert "--rate-per-sec" in capsys.readouterr().err


def test_a_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "absent.csv"), "--thing-type", "t"], iot_client=object()) == 2
    assert "cannot read" in capsys.readouterr().err


def test_chunk_boundaries_keep_create_thing_within_the_rate(iot: Any, thing_type: str) -> None:
    clock = FakeClock()
    create_times: list[float] = []
    iot.meta.events.register("before-call.iot.CreateThing", lambda **_: create_times.append(clock()))
    chunk_sizes: list[int] = []

    results = bulk_register(
        iot,
        [f"70B3D57ED{n:07X}" for n in range(100)],
        RegistrationSettings(thing_type),
        on_chunk=lambda chunk: chunk_sizes.append(len(chunk)),
        clock=clock,
        sleep=clock.sleep,
    )

    assert {result.outcome for result in results} == {RegistrationOutcome.CREATED}
    assert chunk_sizes == [15] * 6 + [10]
    assert max_calls_in_any_second(create_times) <= 15


@pytest.mark.parametrize(
    ("extra_env", "expected"),
    [
        ({}, "no AWS region: pass --region, set AWS_DEFAULT_REGION"),
        ({"AWS_DEFAULT_REGION": "eu-west-1"}, "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID"),
        ({"AWS_DEFAULT_REGION": "eu-west-1", "AWS_PROFILE": "nope"}, "AWS profile 'nope' is not in ~/.aws/config"),
    ],
    ids=["no-region", "no-credentials", "unknown-profile"],
)
def test_missing_aws_setup_is_one_line_naming_what_is_missing(
    tmp_path: Path, extra_env: dict[str, str], expected: str
) -> None:
    source = write_csv(tmp_path / "devices.csv", [["DevEUI"], ["70B3D57ED0000001"]])
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),  # no ~/.aws
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance role to find here; skip its timeout
        **extra_env,
    }
    arguments = [str(source), "--thing-type", "sensor", "--principal-arn", "arn:aws:iot:eu-west-1:1:cert/x"]
    done = subprocess.run(
        [sys.executable, "-m", "cli", *arguments],
        env=env,
        cwd=Path(__file__).parents[3],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith(expected), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
