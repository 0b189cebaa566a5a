"""A Python function of this project: its own narrow role, its own log group, Powertools from the public layer."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.constructs.lambda_code import REPOSITORY_ROOT, function_code
from stacks.nag import acknowledge, arn_finding


def pinned_version(package: str, requirements: Path = REPOSITORY_ROOT / "requirements.txt") -> str:
    """The ``==`` pin of ``package`` in requirements.txt (the Lambda layer must match what the tests ran)."""
    match = re.search(rf"^{re.escape(package)}==([^\s#]+)", requirements.read_text(encoding="utf-8"), re.MULTILINE)
    if match is None:
        raise ValueError(f"{package} is not pinned with == in {requirements}")
    return match.group(1)


POWERTOOLS_VERSION = pinned_version("aws-lambda-powertools")
PYTHON_RUNTIME = lambda_.Runtime.PYTHON_3_11
# AWS publishes each Powertools layer version's ARN as a public SSM parameter; CloudFormation resolves it at deploy
# time, so the synth stays offline and every region gets its own layer ARN.
# Graviton: the functions' code is pure Python and the layer comes built per architecture (pydantic-core inside).
ARCHITECTURE = lambda_.Architecture.ARM_64
POWERTOOLS_LAYER_PARAMETER = f"/aws/service/powertools/python/arm64/python3.11/{POWERTOOLS_VERSION}"
METRICS_NAMESPACE = "AwsIotBridge"
DEFAULT_MEMORY_MIB = 256


def powertools_layer(scope: Construct) -> lambda_.ILayerVersion:
    """The public Powertools v3 layer of the stack's region (one per stack)."""
    stack = Stack.of(scope)
    existing = stack.node.try_find_child("PowertoolsLayer")
    if existing is not None:
        return cast(lambda_.ILayerVersion, existing)
    arn = ssm.StringParameter.value_for_string_parameter(stack, POWERTOOLS_LAYER_PARAMETER)
    return lambda_.LayerVersion.from_layer_version_arn(stack, "PowertoolsLayer", arn)


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """What differs between the functions: package, handler, limits and environment."""

    package: str
    handler: str
    service_name: str
    description: str
    timeout: Duration
    environment: Mapping[str, str] = field(default_factory=dict)
    memory_mib: int = DEFAULT_MEMORY_MIB
    reserved_concurrency: int | None = None
    # Asynchronous invocations retried by Lambda before the dead-letter queue; None keeps Lambda's default (2).
    async_retry_attempts: int | None = None


class BridgeFunction(Construct):
    """One function with a role that only writes its own logs until the caller grants more."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: FunctionSpec,
        log_retention: logs.RetentionDays,
        dead_letter_queue: sqs.IQueue | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.service_name = spec.service_name  # the Powertools "service" dimension of its metrics
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{spec.service_name}: its own logs, and what its stack grants it",
        )
        self.log_group.grant_write(self.role)
        environment = {
            "POWERTOOLS_SERVICE_NAME": spec.service_name,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            **spec.environment,
        }
        self.function = lambda_.Function(
            self,
            "Function",
            code=function_code(self, spec.package),
            handler=spec.handler,
            runtime=PYTHON_RUNTIME,
            architecture=ARCHITECTURE,
            layers=[powertools_layer(self)],
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            timeout=spec.timeout,
            memory_size=spec.memory_mib,
            description=spec.description,
            environment=environment,
            reserved_concurrent_executions=spec.reserved_concurrency,
            dead_letter_queue=dead_letter_queue,
            retry_attempts=spec.async_retry_attempts,
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5",
            finding=arn_finding(self.log_group, ":*"),
            reason="Log streams are created by Lambda inside this function's own log group; their names are not known "
            "in advance, so the grant is the group's streams, nothing else.",
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5",
            finding="Resource::*",
            reason="X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions.",
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            reason="Python 3.11 on purpose: the container image, the test suite and the Powertools layer all run 3.11, "
            "so the code is tested on the runtime it ships on.",
        )


__all__ = ["BridgeFunction", "FunctionSpec", "powertools_layer"]
