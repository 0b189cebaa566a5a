"""Alarms, their encrypted topic and the dashboard: each alarm watches the metric the bridge really emits."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge_container.metrics import DEFAULT_EMF_METRICS, EMF_NAMESPACE, EmfDimension, EmfEmitter
from bridge_container.service import DEFAULT_CONNECTION_ID
from bridge_domain.exceptions import ConfigError
from stacks.config import load_deployment
from stacks.constructs.monitoring import DEPLOYED_CONNECTION_ID
from tests.infrastructure.conftest import Synthesized
from tests.unit.bridge.test_ingress import AS_KEY, build, configuration
from tests.unit.bridge.test_ingress_auth import UPLINK, UPLINK_FIELDS, signed

pytestmark = pytest.mark.infrastructure

WriteConfig = Callable[[dict[str, Any]], Path]
EMITTED = {(str(metric.name), metric.dimension) for metric in DEFAULT_EMF_METRICS}


def _dimensions(metric: dict[str, Any]) -> dict[str, Any]:
    return {item["Name"]: item["Value"] for item in metric.get("Dimensions", [])}


def _alarms(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """Alarms of the service stack by the first words of their description."""
    alarms = synthesized.properties("AWS::CloudWatch::Alarm", "Service")
    return {alarm["AlarmDescription"]: alarm for alarm in alarms}


def _alarm(synthesized: Synthesized, description_start: str) -> dict[str, Any]:
    [alarm] = [a for d, a in _alarms(synthesized).items() if d.startswith(description_start)]
    return alarm


def test_alarms_watch_the_deployed_connection_s_emitted_metrics(synthesized_example: Synthesized) -> None:
    bridge_alarms = [
        alarm
        for alarm in synthesized_example.properties("AWS::CloudWatch::Alarm", "Service")
        if alarm.get("Namespace") == EMF_NAMESPACE and "ConnectionId" in _dimensions(alarm)
    ]

    assert DEPLOYED_CONNECTION_ID == DEFAULT_CONNECTION_ID
    assert len(bridge_alarms) >= 5
    for alarm in bridge_alarms:
        dimensions = _dimensions(alarm)
        breakdown = next((EmfDimension(name) for name in dimensions if name != "ConnectionId"), None)
        assert dimensions["ConnectionId"] == DEPLOYED_CONNECTION_ID
        assert (alarm["MetricName"], breakdown) in EMITTED, alarm["AlarmDescription"]


def test_the_bridge_writes_one_line_per_alarm_period(synthesized_example: Synthesized) -> None:
    [task] = synthesized_example.properties("AWS::ECS::TaskDefinition")
    [bridge] = [c for c in task["ContainerDefinitions"] if c["Name"] == "bridge"]
    environment = {item["Name"]: item["Value"] for item in bridge["Environment"]}
    periods = {
        a["Period"] for a in synthesized_example.properties("AWS::CloudWatch::Alarm", "Service") if "Period" in a
    }

    assert periods == {60}
    assert environment["BRIDGE_EMF_INTERVAL_SECS"] == "60"


def test_low_uplink_rate_alarm_takes_the_configured_threshold_and_window(synthesized_example: Synthesized) -> None:
    alarm = _alarm(synthesized_example, "Fewer than")
    settings = synthesized_example.deployment.settings.alarms

    assert alarm["MetricName"] == "UplinksAccepted"
    assert (alarm["Statistic"], alarm["Period"]) == ("Sum", 60)
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Threshold"] == settings.low_uplinks_per_min
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == settings.low_uplinks_window_mins
    assert alarm["TreatMissingData"] == "breaching"  # no task reporting is no uplinks


@pytest.mark.parametrize(
    ("description_start", "metric", "extra_dimension"),
    [
        ("Accepted uplinks were not published", "UplinksDropped", None),
        ("Requests to the ingress were refused for their credentials", "IngressUnauthorized", None),
        ("AWS IoT Core refused the bridge's MQTT clients", "MqttClients", ("State", "AUTHENTICATION_FAILED")),
        ("Uplinks were refused with 429", "UplinksRejected", ("Reason", "buffer_full")),
        ("The bridge could not register", "ThingsRegistered", ("Outcome", "failed")),
    ],
)
def test_any_occurrence_alarms_fire_on_the_first_one(
    synthesized_example: Synthesized, description_start: str, metric: str, extra_dimension: tuple[str, str] | None
) -> None:
    alarm = _alarm(synthesized_example, description_start)
    expected = {"ConnectionId": DEPLOYED_CONNECTION_ID, **dict([extra_dimension] if extra_dimension else [])}

    assert alarm["MetricName"] == metric
    assert _dimensions(alarm) == expected
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert alarm["EvaluationPeriods"] == 1
    assert alarm["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("metric", ["PublishIn.Throttle", "Connect.Throttle"])
def test_account_quota_throttles_at_aws_iot_alarm(synthesized_example: Synthesized, metric: str) -> None:
    [alarm] = [
        a for a in synthesized_example.properties("AWS::CloudWatch::Alarm", "Service") if a.get("MetricName") == metric
    ]

    assert (alarm["Namespace"], _dimensions(alarm)) == ("AWS/IoT", {"Protocol": "MQTT"})
    assert (alarm["Statistic"], alarm["Threshold"]) == ("Sum", 1)
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_buffer_pressure_alarm_divides_the_fullest_buffer_by_its_size(synthesized_example: Synthesized) -> None:
    alarm = _alarm(synthesized_example, "A task's uplink buffer stayed over")
    queries = {query["Id"]: query for query in alarm["Metrics"]}
    depth, capacity = (queries[name]["MetricStat"] for name in ("depth", "capacity"))

    assert (depth["Metric"]["MetricName"], depth["Stat"]) == ("BufferDepth", "Maximum")
    assert (capacity["Metric"]["MetricName"], capacity["Stat"]) == ("BufferCapacity", "Maximum")
    [expression] = [query for query in alarm["Metrics"] if "Expression" in query]
    assert expression["Expression"] == "100 * depth / MAX([capacity, 1])"
    assert alarm["Threshold"] == synthesized_example.deployment.settings.alarms.buffer_pressure_percent


def test_function_errors_throttles_and_dead_letters_alarm(synthesized_example: Synthesized) -> None:
    alarms = synthesized_example.properties("AWS::CloudWatch::Alarm", "Service")
    lambda_metrics = sorted(a["MetricName"] for a in alarms if a.get("Namespace") == "AWS/Lambda")
    [dead_letters] = [a for a in alarms if a.get("Namespace") == "AWS/SQS"]
    [failures] = [a for a in alarms if a.get("MetricName") == "ThingRegistrationFailures"]

    assert lambda_metrics == ["Errors", "Errors", "Throttles", "Throttles"]
    assert dead_letters["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert dead_letters["Threshold"] == synthesized_example.deployment.settings.alarms.dead_letters
    assert _dimensions(failures) == {"service": "thing-registration"}


def test_every_alarm_notifies_the_alarm_topic_on_alarm_and_recovery(synthesized_example: Synthesized) -> None:
    template = synthesized_example.templates["Service"]
    [topic_id] = [name for name, r in template["Resources"].items() if r["Type"] == "AWS::SNS::Topic"]
    alarms = synthesized_example.properties("AWS::CloudWatch::Alarm", "Service")

    assert len(alarms) == 15
    for alarm in alarms:
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["OKActions"] == [{"Ref": topic_id}]


def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use_and_refuses_plain_http(
    synthesized_example: Synthesized,
) -> None:
    template = synthesized_example.templates["Service"]
    [topic] = synthesized_example.properties("AWS::SNS::Topic", "Service")
    [key] = synthesized_example.properties("AWS::KMS::Key", "Service")
    [topic_policy] = synthesized_example.properties("AWS::SNS::TopicPolicy", "Service")
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    cloudwatch = [
        s for s in key["KeyPolicy"]["Statement"] if s["Principal"].get("Service") == "cloudwatch.amazonaws.com"
    ]

    assert template["Resources"][key_id]["Type"] == "AWS::KMS::Key"
    assert key["EnableKeyRotation"] is True
    assert template["Resources"][key_id]["DeletionPolicy"] == "Delete"  # scheduled for deletion with the stack
    assert key["PendingWindowInDays"] == 7
    assert [set(s["Action"]) for s in cloudwatch] == [{"kms:Decrypt", "kms:GenerateDataKey*"}]
    assert "aws:SourceAccount" in cloudwatch[0]["Condition"]["StringEquals"]
    [deny] = [s for s in topic_policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_email_subscription_only_when_an_address_is_configured(
    synthesized_example: Synthesized, synthesized_second_region: Synthesized
) -> None:
    [subscription] = synthesized_example.properties("AWS::SNS::Subscription", "Service")

    assert subscription["Protocol"] == "email"
    assert subscription["Endpoint"] == synthesized_example.deployment.settings.alarms.email
    assert synthesized_second_region.properties("AWS::SNS::Subscription", "Service") == []


def _dashboard_body(synthesized: Synthesized) -> dict[str, Any]:
    """The dashboard's JSON with each CloudFormation token (function, queue, cluster names) as TOKEN."""
    [dashboard] = synthesized.properties("AWS::CloudWatch::Dashboard", "Service")
    rendered = "".join(part if isinstance(part, str) else "TOKEN" for part in dashboard["DashboardBody"]["Fn::Join"][1])
    body: dict[str, Any] = json.loads(rendered)
    return body


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def test_dashboard_shows_every_connection_and_breakdown_the_bridge_emits(synthesized_example: Synthesized) -> None:
    body = _dashboard_body(synthesized_example)
    titles = [widget["properties"].get("title", "") for widget in body["widgets"]]
    expressions = " ".join(_strings(body))

    for title in (
        "Uplinks accepted per connection",
        "Downlinks received and sent per connection",
        "Uplinks refused by reason",
        "Uplinks dropped by reason",
        "MQTT clients by state",
        "Buffer depth and size",
        "Quota: publishes/s per MQTT connection",
        "Registrations by outcome",
        "Function errors and throttles",
        "Status dead letters and running tasks",
        "Alarms",
    ):
        assert any(t.startswith(title) for t in titles), title
    broken_down = {name for name, dimension in EMITTED if dimension is not None}
    for name, dimension in EMITTED:
        keys = "AwsIotBridge,ConnectionId" + (f",{dimension.value}" if dimension else "")
        if dimension is None and name in broken_down:
            continue  # a total is graphed through its breakdown
        assert f'{{{keys}}} MetricName="{name}"' in expressions, (name, dimension)
    [alarm_widget] = [w for w in body["widgets"] if w["properties"].get("title") == "Alarms"]
    assert len(alarm_widget["properties"]["alarms"]) == 15


def test_alarm_settings_refuse_a_bad_address_and_a_window_beyond_a_day(
    example: dict[str, Any], write_config: WriteConfig
) -> None:
    document = copy.deepcopy(example)
    document["deployment"]["alarms"] = {"email": "not-an-address", "lowUplinksWindowMins": 1441}

    with pytest.raises(ConfigError) as exc:
        load_deployment(write_config(document))

    message = str(exc.value)
    assert "deployment.alarms.email" in message
    assert "deployment.alarms.lowUplinksWindowMins" in message


def test_low_rate_alarm_can_be_turned_off(synthesized_plain_http: Synthesized) -> None:
    alarms = synthesized_plain_http.properties("AWS::CloudWatch::Alarm", "Service")

    assert synthesized_plain_http.deployment.settings.alarms.low_uplinks_per_min == 0
    assert len(alarms) == 14
    assert not [alarm for alarm in alarms if alarm["ComparisonOperator"] == "LessThanThreshold"]


async def test_refusals_at_the_ingress_reach_the_alarms_through_the_lines_the_bridge_writes(
    synthesized_example: Synthesized,
) -> None:
    ingress, sink, _, registry = build(configuration(lns=[{"kind": "thingpark", "asKey": AS_KEY}]))
    emitter = EmfEmitter(registry, stream=io.StringIO())
    sink.capacity = 0
    body = orjson.dumps({"DevEUI_uplink": UPLINK})
    full = await ingress.handle("thingpark", body, query=signed(UPLINK, UPLINK_FIELDS))
    forged = await ingress.handle("thingpark", body, query=b"Time=2026-05-01T12:00:00Z&Token=" + b"ab" * 32)
    documents = [orjson.loads(line) for line in emitter.lines()]

    def reported(alarm: dict[str, Any]) -> float:
        wanted = _dimensions(alarm)
        return sum(
            float(document.get(alarm["MetricName"], 0))
            for document in documents
            if document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [list(wanted)]
            and all(document.get(name) == value for name, value in wanted.items())
        )

    assert (full.status, forged.status) == (429, 401)
    assert reported(_alarm(synthesized_example, "Uplinks were refused with 429")) == 1
    assert reported(_alarm(synthesized_example, "Requests to the ingress were refused for their credentials")) == 1
    assert reported(_alarm(synthesized_example, "Accepted uplinks were not published")) == 0
