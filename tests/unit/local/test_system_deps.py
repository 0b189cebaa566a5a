"""scripts/ensure-system-deps.sh: a Node older than 20 is named with what to do, before npm ci runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[3] / "scripts" / "ensure-system-deps.sh"


def run_with_node(tmp_path: Path, version: str) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "bin"
    fake.mkdir()
    node = fake / "node"
    node.write_text(f"#!/bin/sh\necho {version}\n")
    node.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("version", ["v18.19.0", "v8.0.0", "none"])
def test_an_old_or_broken_node_is_refused_with_what_to_install(tmp_path: Path, version: str) -> None:
    done = run_with_node(tmp_path, version)
    assert done.returncode == 1
    assert f"Node.js 20 or newer is needed for the CDK CLI; found: {version}" in done.stderr
    assert "nodesource" in done.stderr


@pytest.mark.parametrize("version", ["v20.20.2", "v22.1.0"])
def test_node_20_or_newer_passes(tmp_path: Path, version: str) -> None:
    done = run_with_node(tmp_path, version)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_make_install_checks_the_system_before_npm_ci() -> None:
    makefile = (SCRIPT.parents[1] / "Makefile").read_text()
    assert "install: system-deps $(DEPS_STAMP) $(NODE_STAMP)" in makefile
    assert "$(NODE_STAMP): package.json package-lock.json | system-deps" in makefile
