"""Synthesized apps, built once per session: the example, the second-region config and a plain-HTTP variant."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App

from stacks.app_builder import BridgeStacks, build_stacks
from stacks.config import BridgeDeployment, load_deployment

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPOSITORY_ROOT / "config" / "example.json"
SECOND_REGION_CONFIG = REPOSITORY_ROOT / "config" / "second-region.json"
STACK_IDS = ("Data", "Iot", "Service")
CDK_JSON = REPOSITORY_ROOT / "cdk.json"


def cdk_json_context() -> dict[str, Any]:
    """The context of cdk.json, which the CDK CLI passes to app.py, for apps built outside the CLI."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {})
    return context


Template = dict[str, Any]


@dataclass(frozen=True)
class Synthesized:
    """One synthesized app: its deployment, stacks, templates and the validation outcome."""

    deployment: BridgeDeployment
    stacks: BridgeStacks
    directory: Path
    templates: dict[str, Template]
    validation_error: str | None

    def resources(self, resource_type: str, stack_id: str | None = None) -> list[dict[str, Any]]:
        """Every resource of ``resource_type`` (in one stack or all), as template dictionaries."""
        found: list[dict[str, Any]] = []
        for name, template in self.templates.items():
            if stack_id is not None and name != stack_id:
                continue
            found.extend(r for r in template["Resources"].values() if r["Type"] == resource_type)
        return found

    def properties(self, resource_type: str, stack_id: str | None = None) -> list[dict[str, Any]]:
        return [r.get("Properties", {}) for r in self.resources(resource_type, stack_id)]

    @property
    def validation_report(self) -> dict[str, Any] | None:
        report = self.directory / "validation-report.json"
        return json.loads(report.read_text(encoding="utf-8")) if report.exists() else None


def load_document(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def synthesize(document: dict[str, Any], directory: Path) -> Synthesized:
    """Validate ``document`` as a deployment file and synthesize the app with cdk-nag, as ``cdk synth`` does."""
    directory.mkdir(parents=True, exist_ok=True)
    config_file = directory / "config.json"
    config_file.write_text(json.dumps(document), encoding="utf-8")
    deployment = load_deployment(config_file)
    outdir = directory / "cdk.out"
    app = App(outdir=str(outdir), context=cdk_json_context())
    stacks = build_stacks(app, deployment)
    error: str | None = None
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag or CloudFormation validation failed; templates are written anyway
        error = str(exc)
    templates = {
        stack_id: json.loads((outdir / f"{stack_id}.template.json").read_text(encoding="utf-8"))
        for stack_id in STACK_IDS
    }
    return Synthesized(deployment, stacks, outdir, templates, error)


def plain_http_variant(document: dict[str, Any]) -> dict[str, Any]:
    """The example over WSS without a created certificate, uplinks through Basic Ingest, plain HTTP, data removed
    on destroy, no extras."""
    variant = copy.deepcopy(document)
    configuration = variant["configuration"]
    configuration.update(protocol="WSS", createCertificate=False, downlinkEnabled=False, uplinkDelivery="basicIngest")
    deployment = variant["deployment"]
    for key in ("httpsCertificateArn", "statusWebhookUrl", "statusWebhookSecretArn"):
        deployment.pop(key)
    deployment.update(allowPlainHttp=True, destroyRemovesData=True, lorawanShadow=False, ingressCidrs=["192.0.2.0/24"])
    deployment["alarms"] = {"lowUplinksPerMin": 0}  # no e-mail, no low-rate alarm
    return variant


@pytest.fixture(scope="session")
def example() -> dict[str, Any]:
    return load_document(EXAMPLE_CONFIG)


@pytest.fixture(scope="session")
def synthesized_example(tmp_path_factory: pytest.TempPathFactory, example: dict[str, Any]) -> Synthesized:
    return synthesize(example, tmp_path_factory.mktemp("example"))


@pytest.fixture(scope="session")
def synthesized_second_region(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(load_document(SECOND_REGION_CONFIG), tmp_path_factory.mktemp("second-region"))


@pytest.fixture(scope="session")
def synthesized_plain_http(tmp_path_factory: pytest.TempPathFactory, example: dict[str, Any]) -> Synthesized:
    return synthesize(plain_http_variant(example), tmp_path_factory.mktemp("plain-http"))


@pytest.fixture(scope="session")
def all_synthesized(
    synthesized_example: Synthesized, synthesized_second_region: Synthesized, synthesized_plain_http: Synthesized
) -> dict[str, Synthesized]:
    return {
        "example": synthesized_example,
        "second-region": synthesized_second_region,
        "plain-http": synthesized_plain_http,
    }


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(document: dict[str, Any]) -> Path:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        return path

    return write
