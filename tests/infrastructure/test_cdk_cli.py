"""The pinned CDK CLI synthesizes the app as ``make synth`` does: no credentials, no lookups, cdk-nag on."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.infrastructure.conftest import REPOSITORY_ROOT, STACK_IDS

pytestmark = pytest.mark.infrastructure

CDK = REPOSITORY_ROOT / "node_modules" / ".bin" / "cdk"


@pytest.mark.skipif(not CDK.exists(), reason="the pinned CDK CLI is installed by `make install` (npm ci)")
def test_cli_synth_needs_no_credentials(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CDK_DEFAULT_"))}
    environment.update(
        CDK_DISABLE_CLI_TELEMETRY="true",
        CDK_DISABLE_VERSION_CHECK="true",
        CDK_VALIDATION="false",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        AWS_EC2_METADATA_DISABLED="true",
    )
    outdir = tmp_path / "cdk.out"

    result = subprocess.run(
        [str(CDK), "synth", "--no-notices", "--no-version-reporting", "--quiet", "--output", str(outdir)],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    manifest = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert {f"{stack_id}.template.json" for stack_id in STACK_IDS} <= {path.name for path in outdir.iterdir()}
    assert "missing" not in manifest
