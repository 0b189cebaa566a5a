"""Builds the app's three stacks from a validated deployment (used by app.py and by the tests)."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App, Environment, Tags

from stacks.config import BridgeDeployment
from stacks.data_stack import DataStack
from stacks.iot_stack import IotStack
from stacks.nag import add_checks
from stacks.service_stack import ServiceStack

PROJECT_TAG = "aws-iot-bridge"


@dataclass(frozen=True, slots=True)
class BridgeStacks:
    data: DataStack
    iot: IotStack
    service: ServiceStack


def build_stacks(app: App, deployment: BridgeDeployment, *, nag: bool = True) -> BridgeStacks:
    """Data, IoT and service stacks in the configured region; no account at synth time, so no lookups."""
    names = deployment.names
    environment = Environment(region=deployment.region)
    name = deployment.connection.name
    data = DataStack(
        app,
        "Data",
        stack_name=names.stack_name("Data"),
        env=environment,
        description=f"aws-iot-bridge '{name}': connections and device status tables",
        deployment=deployment,
    )
    iot = IotStack(
        app,
        "Iot",
        stack_name=names.stack_name("Iot"),
        env=environment,
        description=f"aws-iot-bridge '{name}': thing type, bridge identity, enebular status plumbing, functions",
        deployment=deployment,
        device_status_table=data.device_status_table,
    )
    service = ServiceStack(
        app,
        "Service",
        stack_name=names.stack_name("Service"),
        env=environment,
        description=f"aws-iot-bridge '{name}': the bridge on ECS Fargate behind a load balancer, its alarms",
        deployment=deployment,
        identity=iot.identity,
        registration=iot.registry.registration,
        status_callback=iot.status.callback,
        status_dead_letters=iot.status.dead_letters,
        connections_table=data.connections_table,
    )
    Tags.of(app).add("project", PROJECT_TAG)
    if nag:
        add_checks(app)
    return BridgeStacks(data=data, iot=iot, service=service)
