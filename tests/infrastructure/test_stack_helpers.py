"""The plain-Python parts of the app: IoT grants, rule SQL, the task's connection file, naming of findings."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_logs as logs

from bridge_domain.connection import ConnectionConfiguration
from bridge_domain.deployment import LOG_RETENTION_DAYS
from bridge_domain.events import EventKind
from bridge_domain.loading import parse_connection
from stacks import rule_sql
from stacks.constructs.functions import POWERTOOLS_LAYER_PARAMETER, pinned_version
from stacks.constructs.log_retention import retention_days
from stacks.container_config import CreatedCertificate, container_connection, secret_env_name
from stacks.iot_access import bridge_grants, topic_resource
from stacks.nag import acknowledge, flatten_reference

EVENT_NAMES = {kind.value for kind in EventKind}
BASE: dict[str, Any] = {"deviceType": "sensor", "region": "eu-central-1", "protocol": "WSS"}


def _configuration(**values: Any) -> ConnectionConfiguration:
    return ConnectionConfiguration.model_validate({**BASE, **values})


def test_every_placeholder_of_a_topic_becomes_a_wildcard() -> None:
    assert topic_resource("lora/{DevEUI}/port-{FPort}/up") == "topic/lora/*/port-*/up"


def test_a_keyword_expression_is_one_wildcard_level_in_grants_and_rule_filters() -> None:
    pattern = "tp/{DevEUI_uplink.CustomerData.site|'none'}/{DevEUI}/up"
    grants = {g.action: g.resources for g in bridge_grants(_configuration(uplinkTopicPattern=pattern))}

    assert grants["iot:Publish"][0] == "topic/tp/*/*/up"
    assert rule_sql.uplink_topic_filter(pattern) == "tp/+/+/up"
    assert rule_sql.dev_eui_level(pattern) == 3


def test_grants_follow_the_configured_prefix_and_share_group() -> None:
    grants = {
        g.action: g.resources
        for g in bridge_grants(_configuration(clientIdPrefix="acme", sharedSubscriptionGroup="g1"))
    }

    assert grants["iot:Connect"] == ("client/acme-*",)
    assert grants["iot:Subscribe"][1] == "topicfilter/$share/g1/tpx/things/+/downlink"


def test_uplink_filter_and_dev_eui_level() -> None:
    pattern = "lora/{ApplicationId}/{DevEUI}/up"

    assert rule_sql.uplink_topic_filter(pattern) == "lora/+/+/up"
    assert rule_sql.dev_eui_level(pattern) == 3


def test_lorawan_shadow_reads_flat_documents_at_their_root() -> None:
    sql = rule_sql.lorawan_shadow_sql(_configuration(uplinkDocument="flat"))

    assert "'rssi': LrrRSSI" in sql
    assert "DevEUI_uplink" not in sql


def test_presence_rule_leaves_out_the_bridge_clients() -> None:
    assert rule_sql.status_from_presence_sql("acme").endswith("WHERE NOT startswith(clientId, 'acme-')")


def test_secret_env_names_follow_the_field_path() -> None:
    assert secret_env_name(("configuration", "lns", 0, "asKey")) == "BRIDGE_SECRET_LNS_0_AS_KEY"
    assert secret_env_name(("configuration", "secretAccessKey")) == "BRIDGE_SECRET_SECRET_ACCESS_KEY"


def test_connection_file_references_secrets_by_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    reference = {"secretsManager": {"secretId": "keys", "jsonKey": "secret"}}
    connection = parse_connection(
        {
            "connectorId": "actility-aws-iot",
            "name": "cross-account",
            "configuration": {
                **BASE,
                "accountPrefix": "a1b2c3d4e5f6g7-ats",
                "accessKeyId": "AKIAEXAMPLEEXAMPLE12",
                "secretAccessKey": reference,
            },
        }
    )

    result = container_connection(connection, endpoint=None, created_certificate=None)
    monkeypatch.setenv("BRIDGE_SECRET_SECRET_ACCESS_KEY", "from-secrets-manager")
    reparsed = parse_connection(result.document)

    assert [env.name for env in result.secret_envs] == ["BRIDGE_SECRET_SECRET_ACCESS_KEY"]
    assert result.secret_envs[0].reference.secret_id == "keys"
    assert result.document["configuration"]["broker"] is None
    assert reparsed.configuration.endpoint == "a1b2c3d4e5f6g7-ats.iot.eu-central-1.amazonaws.com"


def test_a_created_certificate_replaces_imported_certificate_references() -> None:
    reference = {"secretsManager": {"secretId": "old", "jsonKey": "privateKey"}}
    connection = parse_connection(
        {
            "connectorId": "actility-aws-iot",
            "name": "created",
            "configuration": {**BASE, "protocol": "SSL", "createCertificate": True, "privateKey": reference},
        }
    )

    result = container_connection(connection, endpoint="host", created_certificate=CreatedCertificate("arn"))

    assert result.secret_envs == ()
    assert result.document["configuration"]["privateKey"] == {"env": "BRIDGE_IOT_PRIVATE_KEY"}
    assert result.document["configuration"]["broker"] == {"host": "host"}


def test_findings_are_named_as_cdk_nag_prints_them() -> None:
    value = {"Fn::Join": ["", ["arn:aws:iot:eu-central-1:", {"Ref": "AWS::AccountId"}, ":cert/*"]]}

    assert flatten_reference(value) == "arn:aws:iot:eu-central-1:<AWS::AccountId>:cert/*"
    assert flatten_reference({"Fn::GetAtt": ["Logs1234", "Arn"]}) == "<Logs1234.Arn>"


def test_an_acknowledgment_without_a_real_reason_is_refused() -> None:
    stack = Stack(App(), "Test")

    with pytest.raises(ValueError, match="explain"):
        acknowledge(stack, "AwsSolutions-SQS3", reason="not needed")


@pytest.mark.parametrize("days", sorted(LOG_RETENTION_DAYS))
def test_every_accepted_retention_maps_to_cdk(days: int) -> None:
    member = retention_days(days)

    assert isinstance(member, logs.RetentionDays)
    assert member.name != "INFINITE"


def test_retention_names_match_their_days() -> None:
    assert retention_days(90) == logs.RetentionDays.THREE_MONTHS
    assert retention_days(3653) == logs.RetentionDays.TEN_YEARS


def test_lambda_layer_is_the_powertools_version_the_tests_run() -> None:
    assert POWERTOOLS_LAYER_PARAMETER.endswith("/python3.11/" + importlib.metadata.version("aws-lambda-powertools"))


def test_an_unpinned_package_has_no_layer_version(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("aws-lambda-powertools>=3\n")

    with pytest.raises(ValueError, match="not pinned"):
        pinned_version("aws-lambda-powertools", requirements)


def test_the_bridge_may_publish_on_the_enabled_event_topics_only() -> None:
    grants = {g.action: g.resources for g in bridge_grants(_configuration(events={"location": False, "log": True}))}

    events = {resource for resource in grants["iot:Publish"] if resource.rsplit("/", 1)[1] in EVENT_NAMES}
    assert events == {"topic/tpx/things/*/join", "topic/tpx/things/*/status", "topic/tpx/things/*/log"}


def test_the_event_shadow_reads_only_status_and_location_events_that_are_published() -> None:
    sql = rule_sql.lorawan_event_shadow_sql(
        _configuration(uplinkTopicPattern="fleet/{DevEUI}/up", events={"status": False})
    )

    assert sql.endswith("FROM 'fleet/+/+' WHERE topic(3) = 'location'")
    assert rule_sql.shadow_event_kinds(_configuration(events={"status": False, "location": False})) == ()
