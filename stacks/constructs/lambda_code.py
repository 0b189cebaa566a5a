"""Function packages staged by copying at synth time: no Docker, no pip, the same files the tests import.

A package holds ``bridge_domain/``, ``lambdas/__init__.py`` and ``lambdas/<function>/``; third-party code
(Powertools, pydantic) comes from the Powertools layer, boto3 from the runtime.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from aws_cdk import Stage
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SHARED_PACKAGES = ("bridge_domain",)
STAGING_DIRECTORY = "lambda-packages"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")


def stage_function_package(function_package: str, staging_root: Path) -> Path:
    """Copy one function's package into ``staging_root/<function>`` (replacing an earlier copy) and return it."""
    target = staging_root / function_package
    if target.exists():
        shutil.rmtree(target)
    for shared in SHARED_PACKAGES:
        shutil.copytree(REPOSITORY_ROOT / shared, target / shared, ignore=_IGNORED)
    lambdas = REPOSITORY_ROOT / "lambdas"
    shutil.copytree(lambdas / function_package, target / "lambdas" / function_package, ignore=_IGNORED)
    shutil.copy2(lambdas / "__init__.py", target / "lambdas" / "__init__.py")
    return target


def function_code(scope: Construct, function_package: str) -> lambda_.Code:
    """The asset of ``lambdas/<function_package>``, staged under the cloud assembly's directory."""
    staging_root = Path(Stage.of(scope).outdir) / STAGING_DIRECTORY  # type: ignore[union-attr]
    return lambda_.Code.from_asset(str(stage_function_package(function_package, staging_root)))
