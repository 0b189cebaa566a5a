"""Service stack: the network, the discovered IoT endpoint, the bridge on Fargate behind a load balancer, and its
alarms and dashboard."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.config import BridgeDeployment
from stacks.constructs.bridge_identity import BridgeIdentity
from stacks.constructs.bridge_service import BridgeFargateService, ServiceInputs
from stacks.constructs.functions import BridgeFunction
from stacks.constructs.iot_endpoint import IotDataEndpoint
from stacks.constructs.log_retention import retention_days
from stacks.constructs.monitoring import BridgeMonitoring, MonitoredResources
from stacks.constructs.network import BridgeNetwork


class ServiceStack(Stack):
    """Everything that runs: VPC, ECS cluster, the bridge service and its load balancer; what watches them."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deployment: BridgeDeployment,
        identity: BridgeIdentity,
        registration: BridgeFunction,
        status_callback: BridgeFunction,
        status_dead_letters: sqs.IQueue,
        connections_table: dynamodb.ITable,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        settings = deployment.settings
        retention = retention_days(settings.log_retention_days)
        network = BridgeNetwork(self, "Network", settings=settings, log_retention=retention)
        endpoint = None  # accountPrefix names the endpoint (e.g. another account's, reached with access keys)
        if deployment.configuration.account_prefix is None:
            endpoint = IotDataEndpoint(self, "IotEndpoint", log_retention=retention).endpoint
        self.bridge = BridgeFargateService(
            self,
            "Bridge",
            deployment=deployment,
            vpc=network.vpc,
            placement=network.task_placement,
            inputs=ServiceInputs(
                identity=identity,
                registration_function=registration.function,
                connections_table=connections_table,
                endpoint=endpoint,
            ),
            log_retention=retention,
        )
        self.monitoring = BridgeMonitoring(
            self,
            "Monitoring",
            settings=settings.alarms,
            configuration=deployment.configuration,
            resources=MonitoredResources(
                service=self.bridge.service,
                registration=registration,
                status_callback=status_callback,
                dead_letters=status_dead_letters,
            ),
        )
        CfnOutput(
            self,
            "AlarmTopicArn",
            value=self.monitoring.topic.topic_arn,
            description="SNS topic of the bridge's alarms (subscribe more endpoints to it)",
        )
        CfnOutput(
            self,
            "DashboardName",
            value=self.monitoring.dashboard.dashboard_name,
            description="CloudWatch dashboard of the bridge",
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
