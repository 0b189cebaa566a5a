"""``make run --tasks 3``: three bridge tasks behind the local load balancer share the uplinks, take each downlink
once through the shared subscription, and hold client IDs of their own (no clash at the IoT Core stand-in)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

TASKS = 3
DEVICES = 12
RUN_TIMEOUT_SECS = 150


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    state_dir = tmp_path_factory.mktemp("tasks") / "state"
    summary_path = state_dir.parent / "summary.json"
    completed = subprocess.run(
        [sys.executable, "-m", "devtools", "--state-dir", str(state_dir), "--tasks", str(TASKS),
         "--devices", str(DEVICES), "--rate", "30", "--downlink-every", "0.5", "--summary-every", "2",
         "--duration", "8", "--summary-json", str(summary_path)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_SECS, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "3 tasks behind the load balancer" in completed.stdout
    assert re.search(r"per task: uplinks accepted \d+ / \d+ / \d+", completed.stdout), completed.stdout
    document: dict[str, Any] = json.loads(Path(summary_path).read_text())
    return document


def test_uplinks_spread_over_the_three_tasks_and_none_is_lost(summary: dict[str, Any]) -> None:
    by_task = summary["accepted_by_task"]
    assert len(by_task) == TASKS
    assert all(count > 0 for count in by_task), by_task
    assert sum(by_task) == summary["bridge"]["accepted"]
    assert summary["lns_sent"] == summary["lns_accepted"] == summary["bridge"]["accepted"]
    assert summary["at_broker"] == summary["bridge"]["published"] == summary["lns_sent"]
    assert summary["things_registered"] == DEVICES


def test_each_downlink_reaches_the_lns_once(summary: dict[str, Any]) -> None:
    published = summary["downlinks_published"]
    assert published >= 5
    assert summary["downlinks_at_lns"] == published
    assert sum(summary["downlinks_sent_by_task"]) == published


def test_client_ids_are_unique_across_tasks_and_aws_would_refuse_nothing(summary: dict[str, Any]) -> None:
    client_ids = summary["bridge"]["client_ids"]
    assert len(client_ids) == len(set(client_ids))
    tasks = {re.sub(r"-\d+$", "", client_id) for client_id in client_ids}
    assert len(tasks) == TASKS, tasks
    # a duplicate client ID would have disconnected the older client, counted by the stand-in
    assert summary["aws"]["total"] == 0, summary["aws"]
