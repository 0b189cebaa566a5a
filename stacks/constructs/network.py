"""The bridge's network, built without lookups: two availability zones resolved by CloudFormation at deploy time."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

MAX_AZS = 2  # the stack has no account at synth time, so CDK uses Fn::GetAZs (first two zones) instead of a lookup
SUBNET_MASK = 24


class BridgeNetwork(Construct):
    """Public subnets for the load balancer, private ones (NAT egress) for the tasks, flow logs on."""

    def __init__(
        self, scope: Construct, construct_id: str, *, nat_gateways: int, log_retention: logs.RetentionDays
    ) -> None:
        super().__init__(scope, construct_id)
        flow_logs = logs.LogGroup(self, "FlowLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=MAX_AZS,
            nat_gateways=nat_gateways,
            restrict_default_security_group=False,  # nothing uses the default group; no extra custom resource
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=SUBNET_MASK),
                ec2.SubnetConfiguration(
                    name="Tasks", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=SUBNET_MASK
                ),
            ],
            flow_logs={
                "All": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
        )
