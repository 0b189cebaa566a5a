"""The task's environment and the bridge's settings share one vocabulary: the construct sets what the bridge reads."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match, Template

from bridge_container.settings import ContainerSettings, EnvVar
from stacks.constructs.bridge_service import BRIDGE_CONTAINER, CONTAINER_PORT, DRAIN_DEADLINE
from tests.infrastructure.conftest import Synthesized

pytestmark = pytest.mark.infrastructure

# What CloudFormation puts in place of a token (a Ref or Fn::GetAtt: a name or an ARN) at deploy time.
DEPLOY_TIME_VALUE = "resolved-at-deploy-time"


def _environments(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """Each container's environment, by container name."""
    containers = Capture()
    Template.from_json(synthesized.templates["Service"]).has_resource_properties(
        "AWS::ECS::TaskDefinition", {"ContainerDefinitions": containers}
    )
    return {
        container["Name"]: {item["Name"]: item["Value"] for item in container.get("Environment", [])}
        for container in containers.as_array()
    }


def test_every_variable_the_task_sets_is_one_the_bridge_names(all_synthesized: dict[str, Synthesized]) -> None:
    known = {member.value for member in EnvVar}
    for name, synthesized in all_synthesized.items():
        for container, environment in _environments(synthesized).items():
            assert set(environment) <= known, (name, container, set(environment) - known)


def test_the_settings_accept_the_environment_the_bridge_container_gets(synthesized_example: Synthesized) -> None:
    environment = Capture()
    Template.from_json(synthesized_example.templates["Service"]).has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "ContainerDefinitions": Match.array_with(
                [Match.object_like({"Name": BRIDGE_CONTAINER, "Environment": environment})]
            )
        },
    )
    variables = {
        item["Name"]: item["Value"] if isinstance(item["Value"], str) else DEPLOY_TIME_VALUE
        for item in environment.as_array()
    }

    settings = ContainerSettings.from_env(variables)

    assert (settings.service.host, settings.service.port) == ("0.0.0.0", CONTAINER_PORT)
    assert settings.service.drain_deadline_secs == DRAIN_DEADLINE.to_seconds()
    assert settings.service.registration_function == DEPLOY_TIME_VALUE
    assert settings.connections.table_name == DEPLOY_TIME_VALUE
    assert settings.connections.admin_token_secret == DEPLOY_TIME_VALUE
