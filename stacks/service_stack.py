"""Service stack: the network, the discovered IoT endpoint and the bridge on Fargate behind a load balancer."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from stacks.config import BridgeDeployment
from stacks.constructs.bridge_identity import BridgeIdentity
from stacks.constructs.bridge_service import BridgeFargateService, ServiceInputs
from stacks.constructs.iot_endpoint import IotDataEndpoint
from stacks.constructs.log_retention import retention_days
from stacks.constructs.network import BridgeNetwork


class ServiceStack(Stack):
    """Everything that runs: VPC, ECS cluster, the bridge service and its load balancer."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deployment: BridgeDeployment,
        identity: BridgeIdentity,
        registration_function: lambda_.IFunction,
        connections_table: dynamodb.ITable,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        settings = deployment.settings
        retention = retention_days(settings.log_retention_days)
        network = BridgeNetwork(self, "Network", nat_gateways=settings.nat_gateways, log_retention=retention)
        endpoint = None  # accountPrefix names the endpoint (e.g. another account's, reached with access keys)
        if deployment.configuration.account_prefix is None:
            endpoint = IotDataEndpoint(self, "IotEndpoint", log_retention=retention).endpoint
        self.bridge = BridgeFargateService(
            self,
            "Bridge",
            deployment=deployment,
            vpc=network.vpc,
            inputs=ServiceInputs(
                identity=identity,
                registration_function=registration_function,
                connections_table=connections_table,
                endpoint=endpoint,
            ),
            log_retention=retention,
        )
        if endpoint is not None:
            CfnOutput(self, "IotDataEndpoint", value=endpoint, description="The AWS IoT data endpoint (ATS)")
        CfnOutput(
            self,
            "AdminTokenSecretArn",
            value=self.bridge.admin_token.secret_arn,
            description="Secret holding the Connections API bearer token",
        )
        scheme = "https" if settings.https_certificate_arn else "http"
        CfnOutput(
            self,
            "IngressUrl",
            value=f"{scheme}://{self.bridge.load_balancer.load_balancer_dns_name}",
            description="Base URL for the network servers (e.g. <url>/uplinks/thingpark); point your DNS name here",
        )
