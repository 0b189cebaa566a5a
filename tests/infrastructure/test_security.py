"""Security properties of the synthesized templates: cdk-nag, cfn-lint, IAM scoping, trust, TLS and encryption."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import cfnlint
import pytest
from cfnlint.api import ManualArgs, lint

from stacks.nag import MIN_REASON_CHARS
from tests.infrastructure.conftest import Synthesized

pytestmark = pytest.mark.infrastructure

VARIANTS = ("example", "second-region", "plain-http")
SCOPED_SERVICES = ("iot:", "sns:")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@cache
def _actions_without_resource_types() -> frozenset[str]:
    """IAM actions that AWS defines with no resource type (so ``*`` is their only valid resource).

    Read from the service authorization data shipped with cfn-lint, not from a list written here.
    """
    data_file = Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" / "Policies.json"
    services = json.loads(data_file.read_text(encoding="utf-8"))
    without: set[str] = set()
    for prefix in ("iot", "sns"):
        for action, spec in services[prefix]["Actions"].items():
            if not spec.get("Resources"):
                without.add(f"{prefix}:{action}".lower())
    return frozenset(without)


def _policy_statements(synthesized: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    """(where, statement) of every IAM policy, inline role policy and IoT policy in every stack."""
    found: list[tuple[str, dict[str, Any]]] = []
    for stack_id, template in synthesized.templates.items():
        for logical_id, resource in template["Resources"].items():
            properties = resource.get("Properties", {})
            documents: list[dict[str, Any]] = []
            if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IoT::Policy"):
                documents.append(properties["PolicyDocument"])
            if resource["Type"] == "AWS::IAM::Role":
                documents.extend(policy["PolicyDocument"] for policy in properties.get("Policies", []))
            for document in documents:
                found.extend((f"{stack_id}/{logical_id}", statement) for statement in document["Statement"])
    return found


@pytest.mark.parametrize("variant", VARIANTS)
def test_cdk_nag_reports_no_unacknowledged_finding(all_synthesized: dict[str, Synthesized], variant: str) -> None:
    synthesized = all_synthesized[variant]
    report = synthesized.validation_report
    violations = [
        f"{violation['ruleName']} at {construct['constructPath']}"
        for plugin in (report or {}).get("pluginReports", [])
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    ]

    assert synthesized.validation_error is None
    assert violations == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_acknowledgment_has_a_written_reason(all_synthesized: dict[str, Synthesized], variant: str) -> None:
    directory = all_synthesized[variant].directory
    reasons: dict[str, str] = {}
    for stack_id in all_synthesized[variant].templates:
        metadata = json.loads((directory / f"{stack_id}.metadata.json").read_text(encoding="utf-8"))
        for path, entries in metadata.items():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    reasons.update({f"{path} {rule}": reason for rule, reason in entry["data"].items()})

    assert any("AwsSolutions-IAM5" in key for key in reasons)
    assert [key for key, reason in reasons.items() if len(reason) < MIN_REASON_CHARS] == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_cfn_lint_reports_no_error(all_synthesized: dict[str, Synthesized], variant: str) -> None:
    synthesized = all_synthesized[variant]
    errors: list[str] = []
    for stack_id, template in synthesized.templates.items():
        matches = lint(json.dumps(template), config=ManualArgs(regions=[synthesized.deployment.region]))
        errors.extend(f"{stack_id}: {match}" for match in matches if match.rule.id.startswith("E"))

    assert errors == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_iot_or_sns_action_has_a_star_resource_unless_aws_defines_no_resource_type(
    all_synthesized: dict[str, Synthesized], variant: str
) -> None:
    unscoped = [
        (where, action)
        for where, statement in _policy_statements(all_synthesized[variant])
        if statement.get("Effect") == "Allow" and "*" in _as_list(statement.get("Resource"))
        for action in _as_list(statement["Action"])
        if action.startswith(SCOPED_SERVICES) and action.lower() not in _actions_without_resource_types()
    ]

    assert unscoped == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_policy_grants_a_service_wide_action(all_synthesized: dict[str, Synthesized], variant: str) -> None:
    wildcard_actions = [
        (where, action)
        for where, statement in _policy_statements(all_synthesized[variant])
        for action in _as_list(statement["Action"])
        if action == "*" or action.endswith(":*")
    ]

    assert wildcard_actions == []


def test_status_push_role_is_trusted_by_aws_iot_for_this_accounts_rules_only(synthesized_example: Synthesized) -> None:
    role = next(
        p for p in synthesized_example.properties("AWS::IAM::Role") if p.get("RoleName") == "enebular_status_push_role"
    )
    [statement] = role["AssumeRolePolicyDocument"]["Statement"]

    assert statement["Principal"] == {"Service": "iot.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    rule_arns = json.dumps(statement["Condition"]["ArnEquals"]["aws:SourceArn"])
    assert "rule/enebular_status_push_rule" in rule_arns
    assert "rule/enebular_devicestate_push_rule" in rule_arns


def test_status_push_role_may_only_publish_to_the_two_topics(synthesized_example: Synthesized) -> None:
    roles = {
        logical_id: resource
        for logical_id, resource in synthesized_example.templates["Iot"]["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
        and resource["Properties"].get("RoleName") == "enebular_status_push_role"
    }
    [role_id] = roles
    policies = [p for p in synthesized_example.properties("AWS::IAM::Policy", "Iot") if {"Ref": role_id} in p["Roles"]]
    statements = [s for p in policies for s in p["PolicyDocument"]["Statement"]]
    topic_ids = {
        logical_id
        for logical_id, resource in synthesized_example.templates["Iot"]["Resources"].items()
        if resource["Type"] == "AWS::SNS::Topic"
    }

    assert not roles[role_id]["Properties"].get("ManagedPolicyArns")
    assert [s["Action"] for s in statements] == ["sns:Publish"]
    assert sorted(r["Ref"] for r in statements[0]["Resource"]) == sorted(topic_ids)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_role_trusts_exactly_one_aws_service(all_synthesized: dict[str, Synthesized], variant: str) -> None:
    principals = [
        statement["Principal"]
        for role in all_synthesized[variant].properties("AWS::IAM::Role")
        for statement in role["AssumeRolePolicyDocument"]["Statement"]
    ]

    assert principals
    assert all(set(principal) == {"Service"} and isinstance(principal["Service"], str) for principal in principals)


@pytest.mark.parametrize("variant", VARIANTS)
def test_sns_topics_are_encrypted_and_refuse_plain_http(all_synthesized: dict[str, Synthesized], variant: str) -> None:
    synthesized = all_synthesized[variant]
    topics = synthesized.properties("AWS::SNS::Topic")
    denials = [
        statement
        for policy in synthesized.properties("AWS::SNS::TopicPolicy")
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny" and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    denied_topics = {json.dumps(r) for statement in denials for r in _as_list(statement["Resource"])}

    assert len(topics) == 3  # the two enebular topics and the alarm topic
    assert all(topic["KmsMasterKeyId"] for topic in topics)
    assert len(denied_topics) == 3


@pytest.mark.parametrize("variant", VARIANTS)
def test_queues_and_buckets_refuse_plain_http_and_are_encrypted(
    all_synthesized: dict[str, Synthesized], variant: str
) -> None:
    synthesized = all_synthesized[variant]
    queues = synthesized.properties("AWS::SQS::Queue")
    queue_policies = synthesized.properties("AWS::SQS::QueuePolicy")
    buckets = synthesized.properties("AWS::S3::Bucket")
    bucket_policies = synthesized.properties("AWS::S3::BucketPolicy")

    def denies_plain_http(policies: list[dict[str, Any]]) -> bool:
        return all(
            any(
                s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
                for s in p["PolicyDocument"]["Statement"]
            )
            for p in policies
        )

    assert all(queue.get("SqsManagedSseEnabled") or queue.get("KmsMasterKeyId") for queue in queues)
    assert len(queue_policies) == len(queues)
    assert denies_plain_http(queue_policies)
    assert all("BucketEncryption" in bucket for bucket in buckets)
    assert len(bucket_policies) == len(buckets)
    assert denies_plain_http(bucket_policies)


@pytest.mark.parametrize("variant", VARIANTS)
def test_tables_are_encrypted_with_point_in_time_recovery(
    all_synthesized: dict[str, Synthesized], variant: str
) -> None:
    tables = all_synthesized[variant].properties("AWS::DynamoDB::Table")

    assert len(tables) == 3
    assert all(table["SSESpecification"]["SSEEnabled"] is True for table in tables)
    assert all(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True for table in tables)


def test_the_certificate_secret_is_written_by_the_deployment_not_the_template(synthesized_example: Synthesized) -> None:
    secrets = synthesized_example.properties("AWS::SecretsManager::Secret", "Iot")

    assert len(secrets) == 1
    assert "SecretString" not in secrets[0]
