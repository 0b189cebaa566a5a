"""The service stack: Fargate task, health checks, autoscaling, load balancer, network and the task's config file."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge_domain.loading import parse_connection
from devtools.pki import DevPki
from stacks.config import load_deployment
from stacks.constructs.bridge_service import (
    CONTAINER_PORT,
    HEALTH_CHECK_PATH,
    TASK_CPU_UNITS,
    TASK_MEMORY_MIB,
    scaling_targets,
)
from stacks.container_config import CONFIG_FILE, IOT_CERTIFICATE_ENV, IOT_PRIVATE_KEY_ENV
from tests.infrastructure.conftest import Synthesized

pytestmark = pytest.mark.infrastructure

# The real values behind the tokens of the connection document, as they would be at deploy time.
ENDPOINT = "a1b2c3d4e5f6g7-ats.iot.eu-central-1.amazonaws.com"
CERTIFICATE_ARN = "arn:aws:iot:eu-central-1:123456789012:cert/" + "ab" * 32


def _containers(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    [task] = synthesized.properties("AWS::ECS::TaskDefinition")
    return {container["Name"]: container for container in task["ContainerDefinitions"]}


def _environment(container: dict[str, Any]) -> dict[str, Any]:
    return {item["Name"]: item["Value"] for item in container.get("Environment", [])}


def _render(value: Any) -> str:
    """The deploy-time string of an Fn::Join, with each token replaced by what CloudFormation would put there."""
    if isinstance(value, str):
        return value
    parts = []
    for part in value["Fn::Join"][1]:
        if isinstance(part, str):
            parts.append(part)
        elif "Fn::GetAtt" in part:
            parts.append(ENDPOINT)
        else:
            parts.append(CERTIFICATE_ARN)
    return "".join(parts)


def test_fargate_task_is_a_quarter_vcpu(synthesized_example: Synthesized) -> None:
    [task] = synthesized_example.properties("AWS::ECS::TaskDefinition")

    assert TASK_CPU_UNITS == 256
    assert task["Cpu"] == str(TASK_CPU_UNITS)
    assert task["Memory"] == str(TASK_MEMORY_MIB)
    assert task["RequiresCompatibilities"] == ["FARGATE"]


def test_container_health_check_calls_healthz(synthesized_example: Synthesized) -> None:
    bridge = _containers(synthesized_example)["bridge"]

    assert bridge["HealthCheck"]["Command"][:2] == ["CMD", "python"]
    assert f"127.0.0.1:{CONTAINER_PORT}{HEALTH_CHECK_PATH}" in bridge["HealthCheck"]["Command"][-1]
    assert bridge["PortMappings"] == [{"ContainerPort": CONTAINER_PORT, "Protocol": "tcp"}]


def test_load_balancer_health_check_is_healthz(synthesized_example: Synthesized) -> None:
    [target_group] = synthesized_example.properties("AWS::ElasticLoadBalancingV2::TargetGroup")

    assert target_group["HealthCheckPath"] == HEALTH_CHECK_PATH
    assert target_group["Matcher"] == {"HttpCode": "200"}
    assert target_group["Port"] == CONTAINER_PORT
    assert target_group["TargetType"] == "ip"


def _tracked_metrics(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """Each target-tracking policy's customized metric and target, by metric name."""
    tracked = {}
    for policy in synthesized.properties("AWS::ApplicationAutoScaling::ScalingPolicy"):
        tracking = policy["TargetTrackingScalingPolicyConfiguration"]
        metric = tracking["CustomizedMetricSpecification"]
        tracked[metric["MetricName"]] = {**metric, "TargetValue": tracking["TargetValue"]}
    return tracked


def test_service_scales_on_uplinks_and_buffer_per_task_not_cpu(synthesized_second_region: Synthesized) -> None:
    [target] = synthesized_second_region.properties("AWS::ApplicationAutoScaling::ScalableTarget")
    tracked = _tracked_metrics(synthesized_second_region)
    rate = synthesized_second_region.deployment.configuration.uplink_rate_per_sec

    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 4)
    assert target["ScalableDimension"] == "ecs:service:DesiredCount"
    assert set(tracked) == {"UplinksAccepted", "BufferDepth"}
    for metric in tracked.values():
        # Each task writes one data point a minute: the average over a minute is one task's.
        assert (metric["Namespace"], metric["Statistic"]) == ("AwsIotBridge", "Average")
        assert metric["Dimensions"] == [{"Name": "ConnectionId", "Value": "default"}]
    assert tracked["UplinksAccepted"]["TargetValue"] == math.ceil(rate * 0.7) * 60
    assert tracked["BufferDepth"]["TargetValue"] == rate


def test_scaling_targets_come_from_the_deployment_section(
    example: dict[str, Any], write_config: Callable[[dict[str, Any]], Path]
) -> None:
    document = copy.deepcopy(example)
    document["deployment"].update(uplinksPerTaskPerSec=400, bufferDepthPerTask=250)

    targets = scaling_targets(load_deployment(write_config(document)))

    assert (targets.accepted_uplinks_per_task_per_min, targets.buffer_depth_per_task) == (400 * 60, 250)


def test_deployment_rolls_back_through_the_circuit_breaker(synthesized_example: Synthesized) -> None:
    [service] = synthesized_example.properties("AWS::ECS::Service")
    configuration = service["DeploymentConfiguration"]

    assert configuration["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert configuration["MinimumHealthyPercent"] == 100


def _task_network(synthesized: Synthesized) -> dict[str, Any]:
    [service] = synthesized.properties("AWS::ECS::Service")
    network: dict[str, Any] = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    return network


def _subnet_kind(synthesized: Synthesized, reference: dict[str, str]) -> bool:
    """Whether the subnet ``reference`` points at maps public addresses (a public subnet)."""
    subnet = synthesized.templates["Service"]["Resources"][reference["Ref"]]
    return bool(subnet["Properties"]["MapPublicIpOnLaunch"])


def test_tasks_run_in_public_subnets_without_nat_by_default(synthesized_example: Synthesized) -> None:
    network = _task_network(synthesized_example)

    assert synthesized_example.deployment.settings.network == "publicSubnets"
    assert network["AssignPublicIp"] == "ENABLED"
    assert all(_subnet_kind(synthesized_example, subnet) for subnet in network["Subnets"])
    assert synthesized_example.properties("AWS::EC2::NatGateway") == []
    assert synthesized_example.properties("AWS::EC2::EIP") == []


def test_public_tasks_admit_nothing_but_the_load_balancer(synthesized_example: Synthesized) -> None:
    resources = synthesized_example.templates["Service"]["Resources"]
    [task_group_id] = [group["Fn::GetAtt"][0] for group in _task_network(synthesized_example)["SecurityGroups"]]
    task_group = resources[task_group_id]["Properties"]
    ingress = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::EC2::SecurityGroupIngress"
        and r["Properties"]["GroupId"]["Fn::GetAtt"][0] == task_group_id
    ]
    [balancer] = synthesized_example.properties("AWS::ElasticLoadBalancingV2::LoadBalancer")
    [balancer_group] = balancer["SecurityGroups"]

    assert "SecurityGroupIngress" not in task_group
    assert len(ingress) == 1
    assert ingress[0]["SourceSecurityGroupId"] == balancer_group
    assert (ingress[0]["FromPort"], ingress[0]["ToPort"]) == (CONTAINER_PORT, CONTAINER_PORT)
    assert "CidrIp" not in ingress[0]


def test_nat_layout_keeps_tasks_private_behind_nat_gateways(synthesized_second_region: Synthesized) -> None:
    network = _task_network(synthesized_second_region)

    assert network["AssignPublicIp"] == "DISABLED"
    assert not any(_subnet_kind(synthesized_second_region, subnet) for subnet in network["Subnets"])
    assert len(synthesized_second_region.properties("AWS::EC2::NatGateway")) == 2


def test_cluster_has_container_insights(synthesized_example: Synthesized) -> None:
    [cluster] = synthesized_example.properties("AWS::ECS::Cluster")

    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["ClusterSettings"]


@pytest.mark.parametrize("variant", ["example", "second-region", "plain-http"])
def test_every_log_group_has_a_retention(all_synthesized: dict[str, Synthesized], variant: str) -> None:
    synthesized = all_synthesized[variant]
    groups = synthesized.properties("AWS::Logs::LogGroup")

    assert groups
    assert {group["RetentionInDays"] for group in groups} == {synthesized.deployment.settings.log_retention_days}


def test_secrets_are_injected_from_secrets_manager(synthesized_example: Synthesized) -> None:
    bridge = _containers(synthesized_example)["bridge"]
    secrets = {item["Name"]: json.dumps(item["ValueFrom"]) for item in bridge["Secrets"]}

    assert set(secrets) == {"BRIDGE_SECRET_LNS_0_AS_KEY", IOT_CERTIFICATE_ENV, IOT_PRIVATE_KEY_ENV}
    assert ":secret:aws-iot-bridge/thingpark:asKey::" in secrets["BRIDGE_SECRET_LNS_0_AS_KEY"]
    assert secrets[IOT_PRIVATE_KEY_ENV].endswith(':privateKey::"]]}')
    assert "PRIVATE KEY" not in json.dumps(synthesized_example.templates)


def test_bridge_starts_after_the_config_writer_succeeded(synthesized_example: Synthesized) -> None:
    containers = _containers(synthesized_example)
    writer, bridge = containers["config-writer"], containers["bridge"]

    assert bridge["DependsOn"] == [{"ContainerName": "config-writer", "Condition": "SUCCESS"}]
    assert writer["Essential"] is False
    assert _environment(writer)["BRIDGE_CONFIG_FILE"] == _environment(bridge)["BRIDGE_CONFIG_FILE"] == CONFIG_FILE
    assert writer["MountPoints"] == bridge["MountPoints"]


def test_connection_file_validates_with_the_discovered_endpoint_and_created_certificate(
    synthesized_example: Synthesized, monkeypatch: pytest.MonkeyPatch, pki: DevPki
) -> None:
    writer = _containers(synthesized_example)["config-writer"]
    document = json.loads(_render(_environment(writer)["BRIDGE_CONNECTION_DOCUMENT"]))
    client = pki.client("bridge")
    monkeypatch.setenv(IOT_CERTIFICATE_ENV, client.cert_pem)
    monkeypatch.setenv(IOT_PRIVATE_KEY_ENV, client.key_pem)
    monkeypatch.setenv("BRIDGE_SECRET_LNS_0_AS_KEY", "00112233445566778899aabbccddeeff")

    connection = parse_connection(document)

    assert connection.configuration.endpoint == ENDPOINT
    assert connection.configuration.certificate_id == CERTIFICATE_ARN
    assert connection.deployment is None
    assert "deployment" not in document


def test_endpoint_is_discovered_at_deploy_time(synthesized_example: Synthesized) -> None:
    [discovery] = synthesized_example.resources("Custom::AWS")
    create = json.loads(_render(discovery["Properties"]["Create"]))

    assert create["service"] == "Iot"
    assert create["action"] == "describeEndpoint"
    assert create["parameters"] == {"endpointType": "iot:Data-ATS"}


def test_https_listener_uses_the_configured_certificate_and_no_plain_http(synthesized_example: Synthesized) -> None:
    [listener] = synthesized_example.properties("AWS::ElasticLoadBalancingV2::Listener")

    assert listener["Protocol"] == "HTTPS"
    assert listener["Port"] == 443
    assert listener["Certificates"] == [
        {"CertificateArn": synthesized_example.deployment.settings.https_certificate_arn}
    ]
    assert listener["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")


def test_plain_http_only_with_the_explicit_opt_in(synthesized_plain_http: Synthesized) -> None:
    [listener] = synthesized_plain_http.properties("AWS::ElasticLoadBalancingV2::Listener")

    assert (listener["Protocol"], listener["Port"]) == ("HTTP", 80)


@pytest.mark.parametrize(("variant", "port"), [("second-region", 443), ("plain-http", 80)])
def test_load_balancer_admits_only_the_configured_ranges(
    all_synthesized: dict[str, Synthesized], variant: str, port: int
) -> None:
    synthesized = all_synthesized[variant]
    groups = synthesized.properties("AWS::EC2::SecurityGroup")
    ingress = [rule for group in groups for rule in group.get("SecurityGroupIngress", [])]

    assert sorted(rule["CidrIp"] for rule in ingress) == sorted(synthesized.deployment.settings.ingress_cidrs)
    assert {(rule["FromPort"], rule["ToPort"]) for rule in ingress} == {(port, port)}


def test_load_balancer_logs_access_and_drops_invalid_headers(synthesized_example: Synthesized) -> None:
    [balancer] = synthesized_example.properties("AWS::ElasticLoadBalancingV2::LoadBalancer")
    attributes = {item["Key"]: item["Value"] for item in balancer["LoadBalancerAttributes"]}

    assert balancer["Scheme"] == "internet-facing"
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"


def test_vpc_needs_no_lookup(synthesized_example: Synthesized) -> None:
    subnets = synthesized_example.properties("AWS::EC2::Subnet")
    zones = [json.dumps(subnet["AvailabilityZone"]) for subnet in subnets]

    assert len(subnets) == 2  # public subnets only: the example keeps the default network layout
    assert all("Fn::GetAZs" in zone for zone in zones)
    assert synthesized_example.properties("AWS::EC2::FlowLog")
    manifest = json.loads((synthesized_example.directory / "manifest.json").read_text(encoding="utf-8"))
    assert "missing" not in manifest  # no context lookup is pending: the synth needed no AWS account


def test_task_role_signs_mqtt_only_for_wss(
    synthesized_example: Synthesized, synthesized_second_region: Synthesized
) -> None:
    def task_role_actions(synthesized: Synthesized) -> set[str]:
        return {
            action
            for policy in synthesized.properties("AWS::IAM::Policy", "Service")
            if "TaskRole" in json.dumps(policy["Roles"])
            for statement in policy["PolicyDocument"]["Statement"]
            for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
        }

    assert not {"iot:Connect", "iot:Publish"} & task_role_actions(synthesized_example)
    assert {"iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive"} <= task_role_actions(
        synthesized_second_region
    )
    assert "lambda:InvokeFunction" in task_role_actions(synthesized_example)
