"""Names: the seed's names by default, and a second region in the same account without clashes."""

from __future__ import annotations

from typing import Any

import pytest

from bridge_domain.naming import ResourceNames, suffix_for_region
from tests.infrastructure.conftest import Synthesized

pytestmark = pytest.mark.infrastructure

# Properties that give a resource a fixed physical name.
NAME_PROPERTIES = ("RoleName", "TopicName", "RuleName", "PolicyName", "TableName", "FunctionName", "QueueName")
# Names scoped to a parent (a role, a scalable target), not to the account or region.
SCOPED_NAME_TYPES = frozenset({"AWS::IAM::Policy", "AWS::ApplicationAutoScaling::ScalingPolicy"})
# Names that are global per account (IAM), as opposed to per region.
ACCOUNT_WIDE_TYPES = frozenset({"AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::User"})


def _named_resources(synthesized: Synthesized) -> set[tuple[str, str]]:
    return {
        (resource["Type"], str(resource["Properties"][key]))
        for template in synthesized.templates.values()
        for resource in template["Resources"].values()
        for key in NAME_PROPERTIES
        if isinstance(resource.get("Properties", {}).get(key), str) and resource["Type"] not in SCOPED_NAME_TYPES
    }


def _stack_names(synthesized: Synthesized) -> set[str]:
    return {stack.stack_name for stack in (synthesized.stacks.data, synthesized.stacks.iot, synthesized.stacks.service)}


def test_default_names_are_the_seeds(synthesized_example: Synthesized) -> None:
    names = {name for _, name in _named_resources(synthesized_example)}

    assert {
        "enebular_status_push_role",
        "enebular_shadow_update",
        "enebular_status_push_rule",
        "enebular_devicestate_push_rule",
        "enebular_status_push_sns",
        "enebular_devicestate_push_sns",
    } <= names


def test_second_region_names_carry_the_region_suffix(synthesized_second_region: Synthesized) -> None:
    suffix = suffix_for_region("eu-west-1")
    enebular = {name for _, name in _named_resources(synthesized_second_region) if name.startswith("enebular_")}

    assert enebular
    assert all(name.endswith(suffix) for name in enebular)
    assert "enebular_status_push_role_eu_west_1" in enebular


def test_second_region_in_the_same_account_clashes_with_nothing(
    synthesized_example: Synthesized, synthesized_second_region: Synthesized
) -> None:
    first, second = _named_resources(synthesized_example), _named_resources(synthesized_second_region)
    account_wide_clashes = {(kind, name) for kind, name in first & second if kind in ACCOUNT_WIDE_TYPES}

    assert account_wide_clashes == set()
    assert first & second == set()
    assert _stack_names(synthesized_example).isdisjoint(_stack_names(synthesized_second_region))


def test_every_explicit_name_comes_from_resource_names(synthesized_second_region: Synthesized) -> None:
    names = ResourceNames(suffix_for_region("eu-west-1"))
    expected: set[Any] = {
        names.status_push_role,
        names.shadow_update_rule,
        names.status_push_rule,
        names.presence_push_rule,
        names.devicestate_push_rule,
        names.status_push_topic,
        names.devicestate_push_topic,
    }

    assert {name for _, name in _named_resources(synthesized_second_region)} == expected


@pytest.mark.parametrize(
    ("suffix", "expected"), [("", "AwsIotBridge-Iot"), ("_eu_west_1", "AwsIotBridge-eu-west-1-Iot")]
)
def test_stack_names(suffix: str, expected: str) -> None:
    assert ResourceNames(suffix).stack_name("Iot") == expected
