"""The IoT stack: thing type, bridge policy and certificate, enebular rules and topics, functions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdas.bridge_certificate.properties import Property
from stacks import rule_sql
from stacks.nag import flatten_reference
from tests.infrastructure.conftest import Synthesized

pytestmark = pytest.mark.infrastructure

SEED_RULES = ("enebular_shadow_update", "enebular_status_push_rule", "enebular_devicestate_push_rule")


def _rules(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    return {p["RuleName"]: p["TopicRulePayload"] for p in synthesized.properties("AWS::IoT::TopicRule")}


def _logical_id(synthesized: Synthesized, stack_id: str, resource_type: str, **properties: Any) -> str:
    [found] = [
        logical_id
        for logical_id, resource in synthesized.templates[stack_id]["Resources"].items()
        if resource["Type"] == resource_type
        and all(resource["Properties"].get(key) == value for key, value in properties.items())
    ]
    return str(found)


def _resource_part(arn: Any) -> str:
    """The part of an IoT ARN after the account: ``client/iot-bridge-*``."""
    return str(flatten_reference(arn).split("<AWS::AccountId>:", 1)[1])


def test_thing_type_is_the_device_type_with_a_searchable_dev_eui(synthesized_example: Synthesized) -> None:
    [thing_type] = synthesized_example.properties("AWS::IoT::ThingType")

    assert thing_type["ThingTypeName"] == "lorawanSensor"
    assert thing_type["ThingTypeProperties"]["SearchableAttributes"] == ["devEUI"]


def test_bridge_policy_is_derived_from_the_topic_patterns(synthesized_example: Synthesized) -> None:
    [policy] = synthesized_example.properties("AWS::IoT::Policy")
    grants = {
        s["Action"]: [
            _resource_part(r) for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
        ]
        for s in policy["PolicyDocument"]["Statement"]
    }

    assert grants["iot:Connect"] == ["client/iot-bridge-*"]
    assert grants["iot:Publish"] == [
        "topic/tpx/things/*/uplink",
        "topic/tpx/things/*/join",
        "topic/tpx/things/*/status",
        "topic/tpx/things/*/location",
        "topic/tpx/things/*/downlink/queued",
        "topic/tpx/things/*/downlink/sent",
        "topic/tpx/things/*/downlink/acknowledged",
        "topic/tpx/things/*/downlink/nacked",
        "topic/tpx/things/*/downlink/expired",
        "topic/tpx/things/*/downlink/failed",
    ]
    assert grants["iot:Subscribe"] == [
        "topicfilter/tpx/things/+/downlink",
        "topicfilter/$share/iot-bridge/tpx/things/+/downlink",
    ]
    assert grants["iot:Receive"] == ["topic/tpx/things/*/downlink"]


def test_without_downlinks_the_bridge_may_not_subscribe(synthesized_plain_http: Synthesized) -> None:
    [policy] = synthesized_plain_http.properties("AWS::IoT::Policy")
    actions = [s["Action"] for s in policy["PolicyDocument"]["Statement"]]

    assert actions == ["iot:Connect", "iot:Publish"]


def test_created_certificate_gets_the_policy_and_a_secret(synthesized_example: Synthesized) -> None:
    [certificate] = synthesized_example.resources("Custom::BridgeCertificate")
    policy_id = _logical_id(synthesized_example, "Iot", "AWS::IoT::Policy")
    [secret_id] = [
        logical_id
        for logical_id, resource in synthesized_example.templates["Iot"]["Resources"].items()
        if resource["Type"] == "AWS::SecretsManager::Secret"
    ]

    assert certificate["Properties"][Property.POLICY_NAME] == {"Ref": policy_id}
    assert certificate["Properties"][Property.SECRET_ID] == {"Ref": secret_id}
    assert certificate["DeletionPolicy"] == "Delete"


def test_imported_certificate_is_attached_by_arn(synthesized_second_region: Synthesized) -> None:
    # second-region.json is WSS without a certificate: nothing to create, nothing to attach.
    assert synthesized_second_region.resources("Custom::BridgeCertificate") == []
    assert synthesized_second_region.resources("AWS::IoT::PolicyPrincipalAttachment") == []


def test_rules_keep_the_seed_names(synthesized_example: Synthesized) -> None:
    assert set(SEED_RULES) <= set(_rules(synthesized_example))


def test_shadow_update_rule_republishes_to_the_reserved_topic(synthesized_example: Synthesized) -> None:
    rule = _rules(synthesized_example)["enebular_shadow_update"]

    assert rule["Sql"] == "SELECT * FROM 'enebular/things/+/shadow/update'"
    assert rule["Actions"][0]["Republish"]["Topic"] == "$$aws/things/${topic(3)}/shadow/update"


def test_status_rules_select_connection_changes_and_presence_events(synthesized_example: Synthesized) -> None:
    rules = _rules(synthesized_example)
    shadow = rules["enebular_status_push_rule"]["Sql"]
    presence = rules["enebular_presence_push_rule"]["Sql"]
    status_topic = _logical_id(synthesized_example, "Iot", "AWS::SNS::Topic", TopicName="enebular_status_push_sns")

    assert "FROM '$aws/things/+/shadow/update/documents'" in shadow
    assert "previous.state.reported.enebular.awsiot.connected <> current.state.reported.enebular" in shadow
    assert presence == "SELECT * FROM '$aws/events/presence/+/+' WHERE NOT startswith(clientId, 'iot-bridge-')"
    for name in ("enebular_status_push_rule", "enebular_presence_push_rule"):
        assert rules[name]["Actions"][0]["Sns"]["TargetArn"] == {"Ref": status_topic}


def test_devicestate_rule_sends_shadow_documents_to_its_topic(synthesized_example: Synthesized) -> None:
    rule = _rules(synthesized_example)["enebular_devicestate_push_rule"]
    topic = _logical_id(synthesized_example, "Iot", "AWS::SNS::Topic", TopicName="enebular_devicestate_push_sns")

    assert rule["Sql"] == "SELECT *, topic(3) AS thingName FROM '$aws/things/+/shadow/update/documents'"
    assert rule["Actions"][0]["Sns"] == {
        "TargetArn": {"Ref": topic},
        "RoleArn": rule["Actions"][0]["Sns"]["RoleArn"],
        "MessageFormat": "RAW",
    }


@pytest.mark.parametrize("variant", ["example", "second-region", "plain-http"])
def test_every_rule_has_an_error_action_and_the_sql_version(
    all_synthesized: dict[str, Synthesized], variant: str
) -> None:
    rules = _rules(all_synthesized[variant])

    assert rules
    assert all("CloudwatchLogs" in rule["ErrorAction"] for rule in rules.values())
    assert {rule["AwsIotSqlVersion"] for rule in rules.values()} == {rule_sql.SQL_VERSION}
    assert all(rule["RuleDisabled"] is False for rule in rules.values())


def test_lorawan_shadow_rule_keeps_radio_metadata_in_a_named_shadow(synthesized_example: Synthesized) -> None:
    rule = _rules(synthesized_example)["aws_iot_bridge_lorawan_shadow"]

    assert rule["Sql"].endswith("AS state FROM 'tpx/things/+/uplink'")
    for field in ("'rssi': DevEUI_uplink.LrrRSSI", "'snr': DevEUI_uplink.LrrSNR", "'fCnt': DevEUI_uplink.FCntUp"):
        assert field in rule["Sql"]
    assert rule["Actions"][0]["Republish"]["Topic"] == "$$aws/things/${topic(3)}/shadow/name/lorawan/update"


def test_lorawan_shadow_rule_only_when_configured(synthesized_plain_http: Synthesized) -> None:
    assert "aws_iot_bridge_lorawan_shadow" not in _rules(synthesized_plain_http)


def test_basic_ingest_rule_sends_every_uplink_to_an_encrypted_queue(synthesized_plain_http: Synthesized) -> None:
    rule = _rules(synthesized_plain_http)["iot_bridge_uplinks"]
    resources = synthesized_plain_http.templates["Iot"]["Resources"]
    [action] = rule["Actions"]
    queue_id = action["Sqs"]["QueueUrl"]["Ref"]
    queue = resources[queue_id]["Properties"]

    assert rule["Sql"] == "SELECT * FROM 'tpx/things/+/uplink'"
    assert action["Sqs"]["UseBase64"] is False
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
    assert resources[queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]]["Type"] == "AWS::SQS::Queue"


def test_basic_ingest_rule_role_may_only_send_to_its_queue_for_that_rule(synthesized_plain_http: Synthesized) -> None:
    rule = _rules(synthesized_plain_http)["iot_bridge_uplinks"]
    resources = synthesized_plain_http.templates["Iot"]["Resources"]
    role_id = rule["Actions"][0]["Sqs"]["RoleArn"]["Fn::GetAtt"][0]
    queue_id = rule["Actions"][0]["Sqs"]["QueueUrl"]["Ref"]
    [trust] = resources[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    statements = [
        statement
        for policy in synthesized_plain_http.properties("AWS::IAM::Policy", "Iot")
        if {"Ref": role_id} in policy["Roles"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]

    assert trust["Principal"] == {"Service": "iot.amazonaws.com"}
    assert flatten_reference(trust["Condition"]["ArnEquals"]["aws:SourceArn"][0]).endswith("rule/iot_bridge_uplinks")
    assert [(s["Action"], s["Resource"]) for s in statements] == [
        ("sqs:SendMessage", {"Fn::GetAtt": [queue_id, "Arn"]})
    ]


def test_with_basic_ingest_the_bridge_may_publish_uplinks_only_under_its_rules_prefix(
    synthesized_plain_http: Synthesized,
) -> None:
    [policy] = synthesized_plain_http.properties("AWS::IoT::Policy")
    [publish] = [s for s in policy["PolicyDocument"]["Statement"] if s["Action"] == "iot:Publish"]
    resources = publish["Resource"] if isinstance(publish["Resource"], list) else [publish["Resource"]]
    topics = [_resource_part(r) for r in resources]

    # Uplinks only through the rule; device events (join, status, location by default) stay on their own topics.
    assert [topic for topic in topics if topic.endswith("/uplink")] == [
        "topic/$aws/rules/iot_bridge_uplinks/tpx/things/*/uplink"
    ]
    assert sorted(topic for topic in topics if not topic.endswith("/uplink")) == [
        "topic/tpx/things/*/join",
        "topic/tpx/things/*/location",
        "topic/tpx/things/*/status",
    ]


def test_topic_delivery_creates_no_basic_ingest_rule_or_queue(synthesized_example: Synthesized) -> None:
    assert "iot_bridge_uplinks" not in _rules(synthesized_example)
    assert not any("UplinkQueueUrl" in key for key in synthesized_example.templates["Iot"].get("Outputs", {}))


def test_status_callback_is_subscribed_to_both_topics_with_a_dead_letter_queue(
    synthesized_example: Synthesized,
) -> None:
    subscriptions = synthesized_example.properties("AWS::SNS::Subscription", "Iot")
    [queue_id] = [
        logical_id
        for logical_id, resource in synthesized_example.templates["Iot"]["Resources"].items()
        if resource["Type"] == "AWS::SQS::Queue"
    ]
    function = next(
        p
        for p in synthesized_example.properties("AWS::Lambda::Function")
        if p.get("Handler") == "lambdas.status_callback.handler.handler"
    )

    assert len(subscriptions) == 2
    assert all(s["Protocol"] == "lambda" for s in subscriptions)
    assert all(s["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [queue_id, "Arn"]} for s in subscriptions)
    assert function["DeadLetterConfig"]["TargetArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert set(function["Environment"]["Variables"]) >= {"DEVICE_STATUS_TABLE", "IDEMPOTENCY_TABLE", "WEBHOOK_URL"}


def test_status_callback_sends_bad_messages_to_the_queue_without_lambda_retries(
    synthesized_example: Synthesized,
) -> None:
    configs = synthesized_example.properties("AWS::Lambda::EventInvokeConfig")

    assert [c["MaximumRetryAttempts"] for c in configs] == [0]


def test_registration_concurrency_fits_the_create_thing_quota(synthesized_example: Synthesized) -> None:
    function = next(
        p
        for p in synthesized_example.properties("AWS::Lambda::Function")
        if p.get("Handler") == "lambdas.thing_registration.handler.handler"
    )
    rate = float(function["Environment"]["Variables"]["CREATE_THING_RATE_PER_SEC"])

    assert function["ReservedConcurrentExecutions"] * rate <= 15
    assert function["Environment"]["Variables"]["PRINCIPAL_ARN"]


def test_teardown_is_a_polling_custom_resource_for_the_thing_type(synthesized_example: Synthesized) -> None:
    [teardown] = synthesized_example.resources("Custom::BridgeTeardown")
    thing_type = _logical_id(synthesized_example, "Iot", "AWS::IoT::ThingType")
    handlers = {p.get("Handler") for p in synthesized_example.properties("AWS::Lambda::Function")}

    assert teardown["Properties"]["ThingTypeName"] == {"Ref": thing_type}
    assert {"lambdas.teardown.handler.on_event", "lambdas.teardown.handler.is_complete"} <= handlers
    assert synthesized_example.resources("AWS::StepFunctions::StateMachine")


@pytest.mark.parametrize("variant", ["example", "second-region", "plain-http"])
def test_every_function_has_its_own_role_logs_and_the_powertools_layer(
    all_synthesized: dict[str, Synthesized], variant: str
) -> None:
    ours = [
        p
        for p in all_synthesized[variant].properties("AWS::Lambda::Function")
        if str(p.get("Handler", "")).startswith("lambdas.")
    ]
    roles = [json.dumps(p["Role"]) for p in ours]

    assert len(ours) == len(set(roles))
    assert all(p["Runtime"] == "python3.11" and p["TracingConfig"] == {"Mode": "Active"} for p in ours)
    assert all("LogGroup" in p["LoggingConfig"] for p in ours)
    assert all(len(p["Layers"]) == 1 and "Ref" in p["Layers"][0] for p in ours)
    assert all(p["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == "AwsIotBridge" for p in ours)


def test_lorawan_event_shadow_rule_keeps_battery_margin_and_location(synthesized_example: Synthesized) -> None:
    rule = _rules(synthesized_example)["aws_iot_bridge_lorawan_event_shadow"]

    assert "FROM 'tpx/things/+/+' WHERE topic(4) = 'status' OR topic(4) = 'location'" in rule["Sql"]
    for field in ("'battery': battery", "'margin': margin", "'latitude': latitude", "'longitude': longitude"):
        assert field in rule["Sql"]
    assert rule["Actions"][0]["Republish"]["Topic"] == "$$aws/things/${topic(3)}/shadow/name/lorawan/update"


def test_lorawan_event_shadow_rule_only_when_configured(synthesized_plain_http: Synthesized) -> None:
    assert "aws_iot_bridge_lorawan_event_shadow" not in _rules(synthesized_plain_http)
