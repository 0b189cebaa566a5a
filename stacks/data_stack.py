"""Data stack: the tables that outlive redeployments of the service (retained on destroy by default)."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from stacks.config import BridgeDeployment
from stacks.constructs.tables import removal_policy, table

CONNECTIONS_KEY = "connectionId"
DEVICE_STATUS_KEY = "thingName"


class DataStack(Stack):
    """Connections (the Connections API's store) and device status (written by the status callback)."""

    def __init__(self, scope: Construct, construct_id: str, *, deployment: BridgeDeployment, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        removal = removal_policy(deployment.settings.destroy_removes_data)
        self.connections_table: dynamodb.ITable = table(
            self, "ConnectionsTable", partition_key=CONNECTIONS_KEY, removal=removal
        )
        self.device_status_table: dynamodb.ITable = table(
            self, "DeviceStatusTable", partition_key=DEVICE_STATUS_KEY, removal=removal
        )
