"""``python -m cli selftest --local`` against ``make run``: every step passes and leaves nothing behind; a wrong AS
key and a wrong uplink topic each fail at their own step, clearly, with exit code 1 and no secret printed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest

from tests.integration.test_make_run import FIRST_LINE_TIMEOUT_SECS, LineReader

pytestmark = pytest.mark.integration

SELFTEST_TIMEOUT_SECS = 90
WRONG_AS_KEY = "00112233445566778899aabbccddeeff"
STEPS = (
    "connect to AWS IoT Core over WSS",
    "uplink accepted by the ingress",
    "uplink arrived on AWS IoT Core",
    "thing registered",
    "downlink feedback",
    "status change delivered",
    "cleanup",
)


@dataclass(frozen=True)
class LocalRun:
    state_dir: Path
    process: subprocess.Popen[str]

    @property
    def endpoints(self) -> dict[str, object]:
        document: dict[str, object] = json.loads((self.state_dir / "endpoints.json").read_text())
        return document

    def violations(self) -> dict[str, object]:
        ports = json.loads((self.state_dir / "ports.json").read_text())
        answer: dict[str, object] = httpx.get(f"http://127.0.0.1:{ports['control']}/violations").json()
        return answer


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    state_dir = tmp_path_factory.mktemp("selftest") / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools", "--state-dir", str(state_dir), "--devices", "3", "--rate", "3",
         "--downlink-every", "0", "--summary-every", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = LineReader(process)
    try:
        output.wait_for(r"cli selftest --local", FIRST_LINE_TIMEOUT_SECS)
        yield LocalRun(state_dir, process)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(autouse=True)
def _aws_would_refuse_nothing(local_run: LocalRun) -> Iterator[None]:
    """The self-test's own client, and the bridge it drives, stay within AWS IoT Core's rules in every test."""
    before = local_run.violations()["total"]
    yield
    assert local_run.violations()["total"] == before, local_run.violations()


def selftest(run: LocalRun, *extra: str, secret: str | None = None) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "BRIDGE_SELFTEST_SECRET"}
    if secret is not None:
        environment["BRIDGE_SELFTEST_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-m", "cli", "selftest", "--local", str(run.state_dir), *extra],
        capture_output=True, text=True, timeout=SELFTEST_TIMEOUT_SECS, check=False, env=environment,
    )  # fmt: skip


def step_lines(stdout: str) -> dict[str, str]:
    """The verdict of each step: ok, FAIL or skip."""
    verdicts: dict[str, str] = {}
    for line in stdout.splitlines():
        words = line.split()
        if words and words[0] in ("ok", "FAIL", "skip"):
            for step in STEPS:
                if step in line:
                    verdicts.setdefault(step, words[0])
    return verdicts


def leftovers(run: LocalRun) -> tuple[list[str], list[str]]:
    """Self-test things and queues still in moto."""
    endpoint, region = str(run.endpoints["awsEndpointUrl"]), str(run.endpoints["region"])
    things = boto3.client("iot", endpoint_url=endpoint, region_name=region).list_things()["things"]
    queues = boto3.client("sqs", endpoint_url=endpoint, region_name=region).list_queues().get("QueueUrls", [])
    return (
        [thing["thingName"] for thing in things if thing["thingName"].startswith("5E1F7E57")],
        [queue for queue in queues if "selftest" in queue],
    )


def test_selftest_passes_every_step_against_make_run_and_cleans_up(local_run: LocalRun) -> None:
    completed = selftest(local_run)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert step_lines(completed.stdout) == dict.fromkeys(STEPS, "ok"), completed.stdout
    assert "passed in" in completed.stdout
    assert "downlink feedback: queued" in completed.stdout  # the local LNS took it
    assert "connected, on enebular_status_push_sns" in completed.stdout
    lns_secrets = json.loads((local_run.state_dir / "lns-secrets.json").read_text())
    assert all(secret not in completed.stdout + completed.stderr for secret in lns_secrets.values())
    assert leftovers(local_run) == ([], [])


def test_selftest_with_a_wrong_as_key_fails_at_the_uplink_and_says_to_check_the_key(local_run: LocalRun) -> None:
    completed = selftest(local_run, secret=WRONG_AS_KEY)
    assert completed.returncode == 1, completed.stdout
    verdicts = step_lines(completed.stdout)
    assert verdicts["uplink accepted by the ingress"] == "FAIL"
    assert [verdicts[step] for step in STEPS[2:6]] == ["skip"] * 4
    assert verdicts["cleanup"] == "ok"
    assert "401: token_mismatch" in completed.stdout
    assert "check: the AS key in BRIDGE_SELFTEST_SECRET" in completed.stdout
    assert WRONG_AS_KEY not in completed.stdout + completed.stderr
    assert completed.stdout.rstrip().splitlines()[-1].startswith("FAILED in ")


def test_selftest_fails_clearly_when_the_uplink_never_arrives(local_run: LocalRun) -> None:
    completed = selftest(local_run, "--uplink-topic", "elsewhere/{DevEUI}/uplink", "--timeout", "3")
    assert completed.returncode == 1, completed.stdout
    verdicts = step_lines(completed.stdout)
    assert verdicts["uplink accepted by the ingress"] == "ok"
    assert verdicts["uplink arrived on AWS IoT Core"] == "FAIL"
    assert "nothing on elsewhere/5E1F7E57" in completed.stdout
    assert "uplinkTopicPattern" in completed.stdout
    # the bridge registered the thing for the uplink it accepted; the cleanup removed it
    assert leftovers(local_run) == ([], [])


def test_selftest_with_a_registered_device_keeps_its_thing_and_leaves_its_shadow_alone(local_run: LocalRun) -> None:
    endpoint, region = str(local_run.endpoints["awsEndpointUrl"]), str(local_run.endpoints["region"])
    iot = boto3.client("iot", endpoint_url=endpoint, region_name=region)
    device = "70B3D57ED0000001"  # the first simulated device, registered by the bridge on its first uplink
    deadline = time.monotonic() + 30
    while not any(thing["thingName"] == device for thing in iot.list_things()["things"]):
        assert time.monotonic() < deadline, f"{device} was never registered"
        time.sleep(0.5)
    completed = selftest(local_run, "--dev-eui", device.lower())
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"thing registered: {device}" in completed.stdout
    assert "status change delivered: 5E1F7E57" in completed.stdout  # a synthetic thing of its own instead
    iot.describe_thing(thingName=device)  # still there
    shadows = boto3.client("iot-data", endpoint_url=endpoint, region_name=region)
    with pytest.raises(shadows.exceptions.ResourceNotFoundException):
        shadows.get_thing_shadow(thingName=device)
    assert leftovers(local_run) == ([], [])
