"""IoT stack: everything the seeds set up by hand in the console, least privilege, plus the functions around it."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from stacks.config import BridgeDeployment
from stacks.constructs.bridge_identity import BridgeIdentity
from stacks.constructs.device_registry import DeviceRegistry
from stacks.constructs.log_retention import retention_days
from stacks.constructs.status_plumbing import StatusPlumbing
from stacks.constructs.uplink_ingest import UplinkIngestRule


class IotStack(Stack):
    """Thing type, the bridge's policy and certificate, enebular status plumbing, registration and teardown, and
    the Basic Ingest rule when uplinks are delivered through it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deployment: BridgeDeployment,
        device_status_table: dynamodb.ITable,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        configuration = deployment.configuration
        retention = retention_days(deployment.settings.log_retention_days)
        self.identity = BridgeIdentity(self, "BridgeIdentity", configuration=configuration, log_retention=retention)
        self.registry = DeviceRegistry(
            self,
            "DeviceRegistry",
            device_type=configuration.device_type,
            principal_arn=self.identity.certificate_arn,
            log_retention=retention,
        )
        if configuration.create_certificate:
            # Teardown runs before the certificate is deleted, so the certificate has no things left by then.
            self.registry.teardown.node.add_dependency(self.identity.certificate_resource)
        self.status = StatusPlumbing(
            self,
            "StatusPlumbing",
            configuration=configuration,
            settings=deployment.settings,
            device_status_table=device_status_table,
            log_retention=retention,
        )
        CfnOutput(
            self,
            "StatusPushRoleArn",
            value=self.status.push_role.role_arn,
            description="enebular's 'IAM Role ARN' (the role AWS IoT rules use to publish status to SNS)",
        )
        self.uplink_ingest: UplinkIngestRule | None = None
        if configuration.uplink_delivery == "basicIngest":
            self.uplink_ingest = UplinkIngestRule(
                self, "UplinkIngest", configuration=configuration, log_retention=retention
            )
            CfnOutput(
                self,
                "UplinkQueueUrl",
                value=self.uplink_ingest.queue.queue_url,
                description="Queue of the Basic Ingest rule: every uplink, as published",
            )
        if self.identity.certificate_arn is not None:
            CfnOutput(self, "BridgeCertificateArn", value=self.identity.certificate_arn)
