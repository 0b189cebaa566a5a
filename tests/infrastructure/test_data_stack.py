"""The data stack and what outlives cdk destroy: retained by default, removed when the config says so."""

from __future__ import annotations

import pytest

from tests.infrastructure.conftest import Synthesized

pytestmark = pytest.mark.infrastructure


def _removal(synthesized: Synthesized, resource_type: str, stack_id: str) -> set[tuple[str, str]]:
    return {
        (resource.get("DeletionPolicy", "Delete"), resource.get("UpdateReplacePolicy", "Delete"))
        for resource in synthesized.resources(resource_type, stack_id)
    }


def test_tables_are_keyed_as_the_code_expects(synthesized_example: Synthesized) -> None:
    keys = {table["KeySchema"][0]["AttributeName"] for table in synthesized_example.properties("AWS::DynamoDB::Table")}

    assert keys == {"connectionId", "thingName", "id"}


def test_data_tables_are_retained_by_default(synthesized_example: Synthesized) -> None:
    assert _removal(synthesized_example, "AWS::DynamoDB::Table", "Data") == {("Retain", "Retain")}
    assert _removal(synthesized_example, "AWS::S3::Bucket", "Service") == {("Retain", "Retain")}


def test_data_is_removed_when_the_config_says_destroy_removes_it(synthesized_plain_http: Synthesized) -> None:
    assert _removal(synthesized_plain_http, "AWS::DynamoDB::Table", "Data") == {("Delete", "Delete")}
    assert _removal(synthesized_plain_http, "AWS::S3::Bucket", "Service") == {("Delete", "Delete")}
    # A bucket with objects cannot be deleted: the objects go first.
    assert synthesized_plain_http.resources("Custom::S3AutoDeleteObjects", "Service")


def test_idempotency_records_expire_and_never_outlive_the_stack(synthesized_example: Synthesized) -> None:
    [table] = [
        resource
        for resource in synthesized_example.resources("AWS::DynamoDB::Table", "Iot")
        if resource["Properties"]["KeySchema"][0]["AttributeName"] == "id"
    ]

    assert table["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["DeletionPolicy"] == "Delete"


@pytest.mark.parametrize("variant", ["example", "second-region", "plain-http"])
def test_logs_and_secrets_go_with_the_stack(all_synthesized: dict[str, Synthesized], variant: str) -> None:
    synthesized = all_synthesized[variant]
    for stack_id in synthesized.templates:
        for resource_type in ("AWS::Logs::LogGroup", "AWS::SecretsManager::Secret"):
            assert _removal(synthesized, resource_type, stack_id) <= {("Delete", "Delete")}
