"""The bridge's network, built without lookups: two availability zones resolved by CloudFormation at deploy time.

Two layouts (``deployment.network``). ``publicSubnets``, the default: the tasks run in the public subnets with a
public address each, for their outbound calls (AWS IoT Core, Secrets Manager, ECR, CloudWatch Logs, Lambda,
DynamoDB); their security group admits nothing but the load balancer on the container port, so nothing on the
internet can open a connection to them. ``natGateway``: the tasks run in private subnets and leave through NAT
gateways, which cost an hourly fee and a fee per GB the uplinks carry to AWS IoT Core (README, "Cost").
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from bridge_domain.deployment import DeploymentSettings

MAX_AZS = 2  # the stack has no account at synth time, so CDK uses Fn::GetAZs (first two zones) instead of a lookup
SUBNET_MASK = 24


@dataclass(frozen=True, slots=True)
class TaskPlacement:
    """Where the tasks' network interfaces go and whether they get a public address."""

    subnets: ec2.SubnetSelection
    assign_public_ip: bool


class BridgeNetwork(Construct):
    """Public subnets for the load balancer (and the tasks, by default), flow logs on."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: DeploymentSettings, log_retention: logs.RetentionDays
    ) -> None:
        super().__init__(scope, construct_id)
        behind_nat = settings.network == "natGateway"
        subnets = [ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=SUBNET_MASK)]
        if behind_nat:
            subnets.append(
                ec2.SubnetConfiguration(
                    name="Tasks", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=SUBNET_MASK
                )
            )
        flow_logs = logs.LogGroup(self, "FlowLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=MAX_AZS,
            nat_gateways=settings.nat_gateways if behind_nat else 0,
            restrict_default_security_group=False,  # nothing uses the default group; no extra custom resource
            subnet_configuration=subnets,
            flow_logs={
                "All": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
        )
        subnet_type = ec2.SubnetType.PRIVATE_WITH_EGRESS if behind_nat else ec2.SubnetType.PUBLIC
        self.task_placement = TaskPlacement(
            subnets=ec2.SubnetSelection(subnet_type=subnet_type), assign_public_ip=not behind_nat
        )
