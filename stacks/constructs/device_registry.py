"""The device registry: the thing type, the thing-registration function and the teardown custom resource.

Things are named after DevEUIs (16 hexadecimal digits), so the functions' grants name ``thing/`` followed by
exactly 16 characters (``?`` matches one) rather than every thing of the account.
"""

from __future__ import annotations

from aws_cdk import CustomResource, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct

from bridge_domain.naming import DEV_EUI_ATTRIBUTE
from bridge_domain.quotas import CREATE_THING_PER_SEC
from lambdas.teardown.environment import EnvVar as TeardownEnv
from lambdas.thing_registration.environment import EnvVar as RegistrationEnv
from stacks.constructs.bridge_identity import iot_arn
from stacks.constructs.framework import acknowledge_provider
from stacks.constructs.functions import BridgeFunction, FunctionSpec
from stacks.nag import acknowledge, resource_finding

THING_RESOURCE = "thing/" + "?" * 16  # a DevEUI-named thing
# One instance at a time, at the full quota: the function paces CreateThing itself, so N instances would need
# the quota split N ways; one instance also means a single reserved execution taken from the account.
REGISTRATION_CONCURRENCY = 1
REGISTRATION_RATE_PER_SEC = CREATE_THING_PER_SEC / REGISTRATION_CONCURRENCY
REGISTRATION_TIMEOUT = Duration.minutes(5)
TEARDOWN_EVENT_TIMEOUT = Duration.minutes(1)
TEARDOWN_STEP_TIMEOUT = Duration.minutes(5)
TEARDOWN_POLL_INTERVAL = Duration.seconds(30)
# 10,000 things take about 17 minutes (ListThingPrincipals' 10/s bounds it); CloudFormation gives a custom
# resource at most an hour.
TEARDOWN_TOTAL_TIMEOUT = Duration.minutes(55)


class DeviceRegistry(Construct):
    """Thing type ``deviceType`` (searchable ``devEUI``), registration at CreateThing's quota, teardown on delete."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        device_type: str,
        principal_arn: str | None,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.thing_type = iot.CfnThingType(
            self,
            "ThingType",
            thing_type_name=device_type,
            thing_type_properties=iot.CfnThingType.ThingTypePropertiesProperty(
                searchable_attributes=[DEV_EUI_ATTRIBUTE],
                thing_type_description="LoRaWAN devices registered by aws-iot-bridge",
            ),
        )
        self.thing_type_name = self.thing_type.ref
        self.registration = self._registration(principal_arn, log_retention)
        self.teardown = self._teardown(log_retention)

    def _registration(self, principal_arn: str | None, log_retention: logs.RetentionDays) -> BridgeFunction:
        environment = {
            RegistrationEnv.THING_TYPE_NAME.value: self.thing_type_name,
            RegistrationEnv.CREATE_THING_RATE_PER_SEC.value: f"{REGISTRATION_RATE_PER_SEC:g}",
        }
        if principal_arn is not None:
            environment[RegistrationEnv.PRINCIPAL_ARN.value] = principal_arn
        function = BridgeFunction(
            self,
            "Registration",
            spec=FunctionSpec(
                package="thing_registration",
                handler="lambdas.thing_registration.handler.handler",
                service_name="thing-registration",
                description="Creates a thing per new DevEUI and attaches the bridge certificate",
                timeout=REGISTRATION_TIMEOUT,
                environment=environment,
                reserved_concurrency=REGISTRATION_CONCURRENCY,
            ),
            log_retention=log_retention,
        )
        function.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iot:DescribeThing", "iot:CreateThing"], resources=[iot_arn(self, THING_RESOURCE)]
            )
        )
        if principal_arn is not None:
            # IAM's reference authorises AttachThingPrincipal on the certificate: only the bridge's own one (the
            # thing pattern is listed too, in case a request is ever evaluated against the thing).
            function.role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["iot:AttachThingPrincipal"], resources=[principal_arn, iot_arn(self, THING_RESOURCE)]
                )
            )
        return function

    def _teardown(self, log_retention: logs.RetentionDays) -> CustomResource:
        def teardown_function(construct_id: str, handler: str, timeout: Duration) -> BridgeFunction:
            function = BridgeFunction(
                self,
                construct_id,
                spec=FunctionSpec(
                    package="teardown",
                    handler=handler,
                    service_name="teardown",
                    description="On stack deletion, deletes the things the bridge registered",
                    timeout=timeout,
                    environment={TeardownEnv.THING_TYPE_NAME.value: self.thing_type_name},
                ),
                log_retention=log_retention,
            )
            role = function.role
            # ListThings has no resource type in IAM: "*" is the only resource it accepts.
            role.add_to_principal_policy(iam.PolicyStatement(actions=["iot:ListThings"], resources=["*"]))
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["iot:DeleteThing", "iot:ListThingPrincipals"],
                    resources=[iot_arn(self, THING_RESOURCE)],
                )
            )
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["iot:DetachThingPrincipal"],
                    resources=[iot_arn(self, "cert/*"), iot_arn(self, THING_RESOURCE)],
                )
            )
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                finding=resource_finding(role, iot_arn(self, "cert/*")),
                reason="A thing the bridge registered may hold any certificate of the account; before deleting the "
                "thing, teardown detaches whichever certificates are attached to it.",
            )
            return function

        on_event = teardown_function("TeardownEvent", "lambdas.teardown.handler.on_event", TEARDOWN_EVENT_TIMEOUT)
        is_complete = teardown_function("TeardownStep", "lambdas.teardown.handler.is_complete", TEARDOWN_STEP_TIMEOUT)
        provider = cr.Provider(
            self,
            "TeardownProvider",
            on_event_handler=on_event.function,
            is_complete_handler=is_complete.function,
            query_interval=TEARDOWN_POLL_INTERVAL,
            total_timeout=TEARDOWN_TOTAL_TIMEOUT,
            log_group=logs.LogGroup(
                self, "TeardownProviderLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
            ),
            disable_waiter_state_machine_logging=False,  # CDK's default is off
            waiter_state_machine_log_options=cr.LogOptions(
                destination=logs.LogGroup(
                    self, "TeardownWaiterLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
                ),
                level=sfn.LogLevel.ALL,
            ),
        )
        acknowledge_provider(provider, on_event.function, is_complete.function)
        # The Ref to the thing type also orders deletion: teardown first, so the type has no things left.
        return CustomResource(
            self,
            "Teardown",
            service_token=provider.service_token,
            resource_type="Custom::BridgeTeardown",
            properties={"ThingTypeName": self.thing_type_name},
        )
