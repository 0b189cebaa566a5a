"""The awscrt fast path is confined to one guard, written for one awscrt release."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import awscrt
import pytest

from bridge_container.mqtt import crt

REQUIREMENTS = Path(__file__).parents[3] / "requirements.txt"


def test_installed_awscrt_is_the_release_the_fast_path_was_written_for() -> None:
    # Fails loudly on an awscrt upgrade: re-check the native call's argument order, then move the pin and the guard.
    installed = importlib.metadata.version("awscrt")
    assert installed == awscrt.__version__ == crt.FAST_PATH_AWSCRT_VERSION, (
        f"awscrt {installed} is installed but the fast publish path was written for {crt.FAST_PATH_AWSCRT_VERSION}"
    )


def test_requirements_pin_the_fast_path_release() -> None:
    pins = re.findall(r"^awscrt==(\S+)$", REQUIREMENTS.read_text(), flags=re.MULTILINE)
    assert pins == [crt.FAST_PATH_AWSCRT_VERSION]


def test_guard_refuses_another_awscrt_release() -> None:
    class WithBinding:
        _binding = object()

    assert crt.fast_publisher(WithBinding(), version="0.99.0") is None
    assert crt.fast_publisher(WithBinding(), version=crt.FAST_PATH_AWSCRT_VERSION) is not None


def test_guard_refuses_a_client_without_the_private_binding() -> None:
    assert crt.fast_publisher(object(), version=crt.FAST_PATH_AWSCRT_VERSION) is None


def test_only_the_adapter_imports_awscrt() -> None:
    root = Path(crt.__file__).parents[1]
    importers = sorted(
        str(path.relative_to(root.parent))
        for path in root.rglob("*.py")
        if re.search(r"^\s*(import|from)\s+_?(awscrt|awsiot)\b", path.read_text(), flags=re.MULTILINE)
    )
    assert importers == ["bridge_container/mqtt/crt.py"]


@pytest.mark.parametrize(
    "module",
    [
        "bridge_container.uplink.pool",
        "bridge_container.uplink.limits",
        "bridge_container.downlink.service",
        "bridge_container.ingress.pipeline",
    ],
)
def test_core_imports_without_awscrt(module: str) -> None:
    blocker = (
        "import sys\n"
        "for name in ('awscrt', '_awscrt', 'awsiot'):\n"
        "    sys.modules[name] = None  # makes 'import awscrt' raise ImportError\n"
        f"import {module}\n"
        "assert not any(name.split('.')[0] in ('awscrt', '_awscrt', 'awsiot') and sys.modules[name] is not None"
        " for name in list(sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocker], capture_output=True, text=True, cwd=Path(crt.__file__).parents[2], check=False
    )
    assert result.returncode == 0, result.stderr
