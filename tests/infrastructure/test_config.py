"""A deployment's configuration file: what stops the synth, with which field path."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge_domain.exceptions import ConfigError
from bridge_domain.quotas import DEFAULT_ACCOUNT_CONNECTS_PER_SEC, DEFAULT_ACCOUNT_INBOUND_PUBLISHES_PER_SEC
from stacks.config import load_deployment
from tests.infrastructure.conftest import REPOSITORY_ROOT, SECOND_REGION_CONFIG, load_document

WriteConfig = Callable[[dict[str, Any]], Path]


def _paths(exc: pytest.ExceptionInfo[ConfigError]) -> set[str]:
    return {issue.path for issue in exc.value.issues}


def _changed(document: dict[str, Any], section: str, **values: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    changed[section].update(values)
    return changed


@pytest.mark.parametrize("path", [SECOND_REGION_CONFIG, REPOSITORY_ROOT / "config" / "example.json"])
def test_shipped_configs_are_valid_deployments(path: Path) -> None:
    deployment = load_deployment(path)

    assert deployment.settings is deployment.connection.deployment
    assert deployment.configuration.warnings() == []


def test_every_problem_is_reported_with_its_field_path(example: dict[str, Any], write_config: WriteConfig) -> None:
    document = _changed(example, "configuration", region="europe", downlinkPort=300)
    document["deployment"]["minTasks"] = 0

    with pytest.raises(ConfigError) as exc:
        load_deployment(write_config(document))

    assert {"configuration.region", "configuration.downlinkPort", "deployment.minTasks"} <= _paths(exc)


def test_a_deployment_file_needs_its_deployment_section(example: dict[str, Any], write_config: WriteConfig) -> None:
    document = copy.deepcopy(example)
    del document["deployment"]

    with pytest.raises(ConfigError) as exc:
        load_deployment(write_config(document))

    assert _paths(exc) == {"deployment"}


def test_plain_http_needs_the_explicit_opt_in(example: dict[str, Any], write_config: WriteConfig) -> None:
    document = copy.deepcopy(example)
    del document["deployment"]["httpsCertificateArn"]

    with pytest.raises(ConfigError) as exc:
        load_deployment(write_config(document))

    assert _paths(exc) == {"deployment.httpsCertificateArn"}


def test_inline_secret_values_are_refused_because_they_would_land_in_the_template(
    example: dict[str, Any], write_config: WriteConfig
) -> None:
    document = copy.deepcopy(example)
    document["configuration"]["lns"][0]["asKey"] = "00112233445566778899aabbccddeeff"

    with pytest.raises(ConfigError, match="CloudFormation template") as exc:
        load_deployment(write_config(document))

    assert _paths(exc) == {"configuration.lns[0].asKey"}
    assert "00112233445566778899aabbccddeeff" not in str(exc.value)


def test_the_certificate_may_be_given_inline_because_it_is_public(
    example: dict[str, Any], write_config: WriteConfig, pki: Any
) -> None:
    client = pki.client("imported")
    document = _changed(
        example,
        "configuration",
        createCertificate=False,
        certificateId="ab" * 32,
        certificate=client.cert_pem,
        privateKey={"secretsManager": {"secretId": "aws-iot-bridge/certificate", "jsonKey": "privateKey"}},
    )

    deployment = load_deployment(write_config(document))

    assert deployment.configuration.certificate is not None


def test_certificate_of_another_region_is_refused(example: dict[str, Any], write_config: WriteConfig) -> None:
    document = copy.deepcopy(example)
    document["deployment"]["httpsCertificateArn"] = document["deployment"]["httpsCertificateArn"].replace(
        "eu-central-1", "us-east-1"
    )

    with pytest.raises(ConfigError, match="us-east-1") as exc:
        load_deployment(write_config(document))

    assert _paths(exc) == {"deployment.httpsCertificateArn"}


def test_lorawan_shadow_needs_radio_metadata(example: dict[str, Any], write_config: WriteConfig) -> None:
    document = _changed(example, "configuration", uplinkDocument="decoded")

    with pytest.raises(ConfigError) as exc:
        load_deployment(write_config(document))

    assert _paths(exc) == {"deployment.lorawanShadow"}


def test_lorawan_shadow_cannot_read_basic_ingest_uplinks(example: dict[str, Any], write_config: WriteConfig) -> None:
    document = _changed(example, "configuration", uplinkDelivery="basicIngest")

    with pytest.raises(ConfigError, match="Basic Ingest") as exc:
        load_deployment(write_config(document))

    assert _paths(exc) == {"deployment.lorawanShadow"}


def test_a_local_broker_cannot_be_deployed(example: dict[str, Any], write_config: WriteConfig) -> None:
    document = _changed(example, "configuration", broker={"host": "127.0.0.1", "port": 8883})

    with pytest.raises(ConfigError) as exc:
        load_deployment(write_config(document))

    assert _paths(exc) == {"configuration.broker"}


def test_tasks_times_pool_rate_above_the_planned_account_publish_rate_is_refused(
    example: dict[str, Any], write_config: WriteConfig
) -> None:
    # 3 tasks x 10 clients x 100/s = 3000/s: one publish a second above the account figure is refused.
    document = _changed(example, "deployment", maxTasks=3, accountPublishesPerSec=2999)

    with pytest.raises(ConfigError, match=r"3 x 10 x 100 = 3000 publishes/s exceeds accountPublishesPerSec") as exc:
        load_deployment(write_config(document))

    assert _paths(exc) == {"deployment.maxTasks"}


def test_tasks_times_pool_rate_at_the_planned_account_publish_rate_is_accepted(
    example: dict[str, Any], write_config: WriteConfig
) -> None:
    document = _changed(example, "deployment", maxTasks=3, accountPublishesPerSec=3000)

    assert load_deployment(write_config(document)).settings.account_publishes_per_sec == 3000


def test_tasks_times_pool_size_above_the_planned_account_connect_rate_is_refused(
    example: dict[str, Any], write_config: WriteConfig
) -> None:
    accepted = _changed(example, "deployment", maxTasks=3, accountConnectsPerSec=30)
    refused = _changed(example, "deployment", maxTasks=3, accountConnectsPerSec=29)

    assert load_deployment(write_config(accepted)).settings.account_connects_per_sec == 30
    with pytest.raises(ConfigError, match=r"3 x 10 = 30 connects/s exceeds accountConnectsPerSec") as exc:
        load_deployment(write_config(refused))
    assert _paths(exc) == {"deployment.maxTasks"}


def test_account_figures_default_to_aws_default_quotas(example: dict[str, Any], write_config: WriteConfig) -> None:
    settings = load_deployment(write_config(example)).settings

    assert (settings.account_publishes_per_sec, settings.account_connects_per_sec) == (
        DEFAULT_ACCOUNT_INBOUND_PUBLISHES_PER_SEC,
        DEFAULT_ACCOUNT_CONNECTS_PER_SEC,
    )


@pytest.mark.infrastructure
def test_invalid_config_stops_the_synth_naming_the_field(example: dict[str, Any], tmp_path: Path) -> None:
    config = tmp_path / "invalid.json"
    config.write_text(json.dumps(_changed(example, "configuration", region="mars-1")), encoding="utf-8")
    environment = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps({"config": str(config)}),
        "CDK_OUTDIR": str(tmp_path / "cdk.out"),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }

    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1
    assert "configuration.region" in result.stderr
    assert not (tmp_path / "cdk.out" / "manifest.json").exists()


def test_second_region_config_sets_the_documented_suffix() -> None:
    document = load_document(SECOND_REGION_CONFIG)

    assert document["configuration"]["resourceNameSuffix"] == "_" + document["configuration"]["region"].replace(
        "-", "_"
    )


def test_nat_gateway_count_needs_the_nat_layout(example: dict[str, Any], write_config: WriteConfig) -> None:
    refused = _changed(example, "deployment", natGateways=2)
    accepted = _changed(example, "deployment", natGateways=2, network="natGateway")

    with pytest.raises(ConfigError) as exc:
        load_deployment(write_config(refused))

    assert _paths(exc) == {"deployment.natGateways"}
    assert load_deployment(write_config(accepted)).settings.nat_gateways == 2
