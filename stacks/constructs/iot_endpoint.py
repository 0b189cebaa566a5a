"""The account's AWS IoT data endpoint (ATS), discovered at deploy time instead of typed in by the user."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.constructs.framework import acknowledge_aws_custom_resource
from stacks.nag import acknowledge

ENDPOINT_TYPE = "iot:Data-ATS"  # the Amazon Trust Services endpoint; the legacy one uses deprecated CAs


class IotDataEndpoint(Construct):
    """``endpoint``: e.g. ``a1b2c3d4e5f6g7-ats.iot.eu-central-1.amazonaws.com`` (a CloudFormation token)."""

    def __init__(self, scope: Construct, construct_id: str, *, log_retention: logs.RetentionDays) -> None:
        super().__init__(scope, construct_id)
        call = cr.AwsSdkCall(
            service="Iot",
            action="describeEndpoint",
            parameters={"endpointType": ENDPOINT_TYPE},
            physical_resource_id=cr.PhysicalResourceId.of(f"iot-endpoint-{ENDPOINT_TYPE}"),
        )
        resource = cr.AwsCustomResource(
            self,
            "DescribeEndpoint",
            on_create=call,
            on_update=call,
            # DescribeEndpoint has no resource type in IAM: "*" is the only resource it accepts.
            policy=cr.AwsCustomResourcePolicy.from_sdk_calls(resources=cr.AwsCustomResourcePolicy.ANY_RESOURCE),
            install_latest_aws_sdk=False,  # the runtime's SDK: no download from npm at deploy time
            log_group=logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY),
        )
        acknowledge(
            resource,
            "AwsSolutions-IAM5",
            finding="Resource::*",
            reason="iot:DescribeEndpoint has no resource type in IAM; it only reveals the account's endpoint name.",
        )
        acknowledge_aws_custom_resource(self)
        self.endpoint = resource.get_response_field("endpointAddress")
