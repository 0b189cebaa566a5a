"""The bridge on ECS Fargate behind an Application Load Balancer: health checks, autoscaling, logs, secrets.

The task starts with a small init container that writes the connection file (no secrets: they reach the bridge
as environment variables injected from Secrets Manager) into a task volume; the bridge container starts once it
has exited successfully.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, IgnoreMode, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from bridge_container.metrics import EmfName
from bridge_container.settings import DEFAULT_CONNECTION_SECRETS_PREFIX, EnvVar
from bridge_domain.secrets import SecretsManagerRef
from lambdas.bridge_certificate.properties import SecretKey
from stacks.config import BridgeDeployment
from stacks.constructs.bridge_identity import BridgeIdentity, iot_arn
from stacks.constructs.lambda_code import REPOSITORY_ROOT
from stacks.constructs.monitoring import SECS_PER_PERIOD, bridge_metric
from stacks.constructs.network import TaskPlacement
from stacks.container_config import (
    CONFIG_DIRECTORY,
    CONFIG_FILE,
    IOT_CERTIFICATE_ENV,
    IOT_PRIVATE_KEY_ENV,
    CreatedCertificate,
    container_connection,
)
from stacks.nag import acknowledge, resource_finding

# Fargate size: 0.25 vCPU and 512 MiB serve the seed's 1000 uplinks/s (10 MQTT clients at 100/s each). On Graviton
# (arm64, about 20 % cheaper per vCPU-hour): every compiled dependency (awscrt, orjson, uvloop, httptools,
# pydantic-core, cryptography, cffi) ships manylinux aarch64 wheels for CPython 3.11.
TASK_CPU_UNITS = 256
TASK_MEMORY_MIB = 512
CONTAINER_PORT = 8080
HTTPS_PORT = 443
HTTP_PORT = 80
HEALTH_CHECK_PATH = "/healthz"
HEALTH_CHECK_INTERVAL = Duration.seconds(15)
HEALTH_CHECK_TIMEOUT = Duration.seconds(5)
HEALTH_CHECK_START_PERIOD = Duration.seconds(30)
HEALTH_CHECK_GRACE_PERIOD = Duration.seconds(60)
# SIGTERM → SIGKILL: the bridge drains buffered uplinks in this time (Fargate allows at most 120 s).
STOP_TIMEOUT = Duration.seconds(60)
DRAIN_DEADLINE = Duration.seconds(45)  # the bridge's own drain deadline, inside STOP_TIMEOUT
DEREGISTRATION_DELAY = Duration.seconds(30)
SCALE_OUT_COOLDOWN = Duration.seconds(60)
SCALE_IN_COOLDOWN = Duration.minutes(5)
# A task is scaled out from at 70 % of its uplink rate: room for a minute's growth while a new task starts.
DEFAULT_UPLINK_TARGET_SHARE = 0.7
ADMIN_TOKEN_CHARS = 48
# The Connections API keeps each connection's secrets under this name prefix (the bridge's default).
CONNECTION_SECRETS_PREFIX = DEFAULT_CONNECTION_SECRETS_PREFIX
DOCKERFILE = "bridge_container/Dockerfile"
DOCKER_IGNORE_FILE = REPOSITORY_ROOT / "bridge_container" / "Dockerfile.dockerignore"
BRIDGE_CONTAINER = "bridge"
CONFIG_VOLUME = "bridge-run"
WRITE_CONFIG_SCRIPT = (
    "import os, pathlib; "
    f"pathlib.Path(os.environ['{EnvVar.CONFIG_FILE}']).write_text(os.environ['{EnvVar.CONNECTION_DOCUMENT}'])"
)
HEALTH_CHECK_SCRIPT = (
    f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{CONTAINER_PORT}{HEALTH_CHECK_PATH}', timeout=3)"
)
_COMPLETE_SECRET_ARN_SUFFIX_CHARS = 6


@dataclass(frozen=True, slots=True)
class ScalingTargets:
    """What target tracking aims at per task, in the units of the EMF metrics (one data point a minute)."""

    accepted_uplinks_per_task_per_min: float
    buffer_depth_per_task: float


def scaling_targets(deployment: BridgeDeployment) -> ScalingTargets:
    """The configured targets, or defaults from the connection's uplink rate (70 % of it; one second of it)."""
    settings, rate = deployment.settings, deployment.configuration.uplink_rate_per_sec
    per_sec = settings.uplinks_per_task_per_sec or math.ceil(rate * DEFAULT_UPLINK_TARGET_SHARE)
    return ScalingTargets(
        accepted_uplinks_per_task_per_min=per_sec * SECS_PER_PERIOD,
        buffer_depth_per_task=settings.buffer_depth_per_task or rate,
    )


@dataclass(frozen=True, slots=True)
class ServiceInputs:
    """What the service takes from the other stacks."""

    identity: BridgeIdentity
    registration_function: lambda_.IFunction
    connections_table: dynamodb.ITable
    endpoint: str | None


def docker_ignore_patterns(path: Path = DOCKER_IGNORE_FILE) -> list[str]:
    """The image's .dockerignore patterns: the CDK asset stages exactly the build context Docker would get."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _secret_from_reference(scope: Construct, construct_id: str, reference: SecretsManagerRef) -> secretsmanager.ISecret:
    secret_id = reference.secret_id
    if not secret_id.startswith("arn:"):
        return secretsmanager.Secret.from_secret_name_v2(scope, construct_id, secret_id)
    name = secret_id.split(":secret:", 1)[-1]
    suffix = name.rsplit("-", 1)[-1] if "-" in name else ""
    if len(suffix) == _COMPLETE_SECRET_ARN_SUFFIX_CHARS:
        return secretsmanager.Secret.from_secret_complete_arn(scope, construct_id, secret_id)
    return secretsmanager.Secret.from_secret_partial_arn(scope, construct_id, secret_id)


class BridgeFargateService(Construct):
    """Cluster, task, service, load balancer and scaling of the bridge."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deployment: BridgeDeployment,
        vpc: ec2.IVpc,
        placement: TaskPlacement,
        inputs: ServiceInputs,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = deployment.settings
        self.cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED)
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=TASK_CPU_UNITS,
            memory_limit_mib=TASK_MEMORY_MIB,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.ARM64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
            volumes=[ecs.Volume(name=CONFIG_VOLUME)],
        )
        self.admin_token = secretsmanager.Secret(
            self,
            "AdminToken",
            description="Bearer token of the bridge's Connections API",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=ADMIN_TOKEN_CHARS, exclude_punctuation=True
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.admin_token,
            "AwsSolutions-SMG4",
            reason="A static bearer token with no rotation function: rotate it with put-secret-value; the bridge "
            "re-reads the secret every five minutes, so no redeployment is needed.",
        )
        self.logs = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        self.bridge_container = self._containers(deployment, inputs)
        self._grant_task_role(deployment, inputs)
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=settings.min_tasks,
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            health_check_grace_period=HEALTH_CHECK_GRACE_PERIOD,
            # Public subnets or not, the service's security group admits only the load balancer (its target).
            vpc_subnets=placement.subnets,
            assign_public_ip=placement.assign_public_ip,
            enable_execute_command=False,
        )
        self.load_balancer = self._load_balancer(deployment, vpc)
        self._scaling(deployment)

    def _scaling(self, deployment: BridgeDeployment) -> None:
        """Scale on the work that bounds a task: its accepted uplinks and its buffer, not its CPU.

        A task publishes at most ``uplinkRatePerSec`` (its pool's share of AWS IoT's per-connection limit): the
        service scales out before a task gets there, and again when uplinks wait in a buffer. Each task writes one
        EMF data point a minute per connection, so a metric's Average over a minute is one task's. The ceiling,
        ``maxTasks``, is what ``account_quota_problems`` let through: the most tasks the account's publish and
        connect quotas allow.
        """
        settings = deployment.settings
        scaling = self.service.auto_scale_task_count(min_capacity=settings.min_tasks, max_capacity=settings.max_tasks)
        targets = scaling_targets(deployment)
        scaling.scale_to_track_custom_metric(
            "AcceptedUplinksScaling",
            metric=bridge_metric(EmfName.UPLINKS_ACCEPTED, statistic="Average"),
            target_value=targets.accepted_uplinks_per_task_per_min,
            scale_out_cooldown=SCALE_OUT_COOLDOWN,
            scale_in_cooldown=SCALE_IN_COOLDOWN,
        )
        scaling.scale_to_track_custom_metric(
            "BufferDepthScaling",
            metric=bridge_metric(EmfName.BUFFER_DEPTH, statistic="Average"),
            target_value=targets.buffer_depth_per_task,
            scale_out_cooldown=SCALE_OUT_COOLDOWN,
            scale_in_cooldown=SCALE_IN_COOLDOWN,
        )

    def _containers(self, deployment: BridgeDeployment, inputs: ServiceInputs) -> ecs.ContainerDefinition:
        identity = inputs.identity
        created = (
            CreatedCertificate(certificate_arn=identity.certificate_arn)
            if identity.certificate_secret is not None and identity.certificate_arn is not None
            else None
        )
        connection = container_connection(deployment.connection, endpoint=inputs.endpoint, created_certificate=created)
        secrets: dict[str, ecs.Secret] = {}
        for index, env in enumerate(connection.secret_envs):
            secret = _secret_from_reference(self, f"ConnectionSecret{index}", env.reference)
            secrets[env.name] = ecs.Secret.from_secrets_manager(secret, env.reference.json_key)
        if identity.certificate_secret is not None:
            secrets[IOT_CERTIFICATE_ENV] = ecs.Secret.from_secrets_manager(
                identity.certificate_secret, SecretKey.CERTIFICATE.value
            )
            secrets[IOT_PRIVATE_KEY_ENV] = ecs.Secret.from_secrets_manager(
                identity.certificate_secret, SecretKey.PRIVATE_KEY.value
            )
        image = ecs.ContainerImage.from_asset(
            str(REPOSITORY_ROOT),
            file=DOCKERFILE,
            exclude=docker_ignore_patterns(),
            ignore_mode=IgnoreMode.DOCKER,
            platform=ecr_assets.Platform.LINUX_ARM64,
        )
        log_driver = ecs.LogDrivers.aws_logs(stream_prefix="bridge", log_group=self.logs)
        mount = ecs.MountPoint(container_path=CONFIG_DIRECTORY, source_volume=CONFIG_VOLUME, read_only=False)
        writer = self.task_definition.add_container(
            "ConfigWriter",
            container_name="config-writer",
            image=image,
            essential=False,
            entry_point=["python", "-c", WRITE_CONFIG_SCRIPT],
            environment={
                EnvVar.CONFIG_FILE: CONFIG_FILE,
                EnvVar.CONNECTION_DOCUMENT: Stack.of(self).to_json_string(connection.document),
            },
            logging=log_driver,
        )
        writer.add_mount_points(mount)
        region = Stack.of(self).region
        bridge = self.task_definition.add_container(
            "Bridge",
            container_name=BRIDGE_CONTAINER,
            image=image,
            essential=True,
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT, protocol=ecs.Protocol.TCP)],
            environment={
                EnvVar.CONFIG_FILE: CONFIG_FILE,
                EnvVar.HTTP_HOST: "0.0.0.0",  # noqa: S104 - inside the task; the load balancer is the front door
                EnvVar.HTTP_PORT: str(CONTAINER_PORT),
                EnvVar.REGISTRATION_FUNCTION: inputs.registration_function.function_name,
                EnvVar.ADMIN_TOKEN_SECRET: self.admin_token.secret_arn,
                EnvVar.CONNECTIONS_TABLE: inputs.connections_table.table_name,
                EnvVar.DRAIN_DEADLINE_SECS: str(DRAIN_DEADLINE.to_seconds()),
                # One EMF line per connection and period: the alarms and the scaling count on it.
                EnvVar.EMF_INTERVAL_SECS: str(SECS_PER_PERIOD),
                EnvVar.AWS_REGION: region,
                EnvVar.AWS_DEFAULT_REGION: region,
            },
            secrets=secrets,
            health_check=ecs.HealthCheck(
                command=["CMD", "python", "-c", HEALTH_CHECK_SCRIPT],
                interval=HEALTH_CHECK_INTERVAL,
                timeout=HEALTH_CHECK_TIMEOUT,
                start_period=HEALTH_CHECK_START_PERIOD,
                retries=3,
            ),
            stop_timeout=STOP_TIMEOUT,
            logging=log_driver,
        )
        bridge.add_mount_points(mount)
        bridge.add_container_dependencies(
            ecs.ContainerDependency(container=writer, condition=ecs.ContainerDependencyCondition.SUCCESS)
        )
        acknowledge(
            self.task_definition.obtain_execution_role(),
            "AwsSolutions-IAM5",
            finding="Resource::*",
            reason="ecr:GetAuthorizationToken, which ECS needs to pull the image, supports no resource-level "
            "permissions; the pull itself is limited to the image's repository.",
        )
        acknowledge(
            self.task_definition,
            "AwsSolutions-ECS2",
            reason="The environment holds only names and settings (file path, port, region, function, table and "
            "secret names); every secret value is injected from Secrets Manager through the secrets section.",
        )
        return bridge

    def _grant_task_role(self, deployment: BridgeDeployment, inputs: ServiceInputs) -> None:
        role = self.task_definition.task_role
        # The bridge invokes the function by name (unqualified): no grant on its versions is needed.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[inputs.registration_function.function_arn]
            )
        )
        inputs.connections_table.grant_read_write_data(role)
        self.admin_token.grant_read(role)
        stack = Stack.of(self)
        connection_secrets = (
            f"arn:{stack.partition}:secretsmanager:{stack.region}:{stack.account}:secret:{CONNECTION_SECRETS_PREFIX}*"
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "secretsmanager:CreateSecret",
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:PutSecretValue",
                    "secretsmanager:DeleteSecret",
                    "secretsmanager:RestoreSecret",
                    "secretsmanager:TagResource",
                ],
                resources=[connection_secrets],
            )
        )
        # The Connections API looks up the account of a connection's access key (cross-account connections).
        role.add_to_principal_policy(iam.PolicyStatement(actions=["sts:GetAccessKeyInfo"], resources=["*"]))
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            finding="Resource::*",
            reason="sts:GetAccessKeyInfo supports no resource-level permissions; it only tells which account an "
            "access key belongs to.",
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            finding=resource_finding(role, connection_secrets),
            reason="The Connections API stores each connection's secrets in a secret it creates under this name "
            "prefix; the grant is limited to that prefix.",
        )
        if deployment.configuration.protocol == "WSS":
            # WSS signs the MQTT connection with the task role: it needs what the IoT policy grants a certificate.
            for grant in inputs.identity.grants:
                arns = [iot_arn(self, resource) for resource in grant.resources]
                role.add_to_principal_policy(iam.PolicyStatement(actions=[grant.action], resources=arns))
                for arn in (arn for arn in arns if "*" in arn):
                    acknowledge(
                        role,
                        "AwsSolutions-IAM5",
                        finding=resource_finding(role, arn),
                        reason="Derived from the configured patterns: the wildcard stands for the run-time part only "
                        "(a DevEUI topic level, or the task and pool slot of a client ID).",
                    )

    def _load_balancer(self, deployment: BridgeDeployment, vpc: ec2.IVpc) -> elbv2.ApplicationLoadBalancer:
        settings = deployment.settings
        security_group = ec2.SecurityGroup(
            self,
            "LoadBalancerSecurityGroup",
            vpc=vpc,
            description="Network servers reaching the bridge ingress",
            allow_all_outbound=False,
        )
        ports = ([HTTPS_PORT] if settings.https_certificate_arn else []) + (
            [HTTP_PORT] if settings.allow_plain_http else []
        )
        for cidr in settings.ingress_cidrs:
            for port in ports:
                security_group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(port), f"LNS ingress from {cidr}")
        if "0.0.0.0/0" in settings.ingress_cidrs:
            acknowledge(
                security_group,
                "AwsSolutions-EC23",
                reason="Cloud network servers send uplinks from addresses that are not published; every request "
                "is authenticated by the bridge (ThingPark token, bearer tokens). Narrow it with "
                "deployment.ingressCidrs.",
            )
        load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=True,
            security_group=security_group,
            drop_invalid_header_fields=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
        )
        load_balancer.log_access_logs(
            self._access_log_bucket(settings.destroy_removes_data, settings.log_retention_days)
        )
        target = self.service.load_balancer_target(container_name=BRIDGE_CONTAINER, container_port=CONTAINER_PORT)
        target_group = elbv2.ApplicationTargetGroup(
            self,
            "Targets",
            vpc=vpc,
            port=CONTAINER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[target],
            deregistration_delay=DEREGISTRATION_DELAY,
            health_check=elbv2.HealthCheck(
                path=HEALTH_CHECK_PATH,
                healthy_http_codes="200",
                interval=HEALTH_CHECK_INTERVAL,
                timeout=HEALTH_CHECK_TIMEOUT,
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )
        if settings.https_certificate_arn is not None:
            load_balancer.add_listener(
                "Https",
                port=HTTPS_PORT,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                certificates=[elbv2.ListenerCertificate.from_arn(settings.https_certificate_arn)],
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
                default_target_groups=[target_group],
                open=False,
            )
        if settings.allow_plain_http:
            load_balancer.add_listener(
                "Http",
                port=HTTP_PORT,
                protocol=elbv2.ApplicationProtocol.HTTP,
                default_target_groups=[target_group],
                open=False,
            )
        return load_balancer

    def _access_log_bucket(self, destroy_removes_data: bool, retention_days: int) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only encryption ALB log delivery supports
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(retention_days))],
            removal_policy=RemovalPolicy.DESTROY if destroy_removes_data else RemovalPolicy.RETAIN,
            auto_delete_objects=destroy_removes_data,
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            reason="This bucket receives the load balancer's access logs; logging access to the log bucket would "
            "need yet another bucket. Objects expire with the configured log retention.",
        )
        return bucket
