"""How the bridge authenticates to AWS IoT Core: its IoT policy and its certificate (created, or imported).

Created: a custom resource calls CreateKeysAndCertificate, puts the PEM and private key straight into a Secrets
Manager secret and attaches the policy; on destroy it detaches and deletes the certificate. Imported: the policy is
attached to the certificate named by ``certificateId``.
"""

from __future__ import annotations

from aws_cdk import CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import custom_resources as cr
from constructs import Construct

from bridge_domain.connection import CERTIFICATE_ARN_RE, ConnectionConfiguration
from lambdas.bridge_certificate.properties import Attribute, Property
from stacks.constructs.framework import acknowledge_provider
from stacks.constructs.functions import BridgeFunction, FunctionSpec
from stacks.iot_access import IotGrant, bridge_grants
from stacks.nag import acknowledge, resource_finding

CERTIFICATE_FUNCTION_TIMEOUT = Duration.minutes(2)  # a deletion waits up to ~30 s for detachments to propagate
# Actions AWS IoT defines without a resource type: a statement naming them can only use "*".
IOT_ACTIONS_WITHOUT_RESOURCES = ("iot:CreateKeysAndCertificate", "iot:ListAttachedPolicies")


def iot_arn(scope: Construct, resource: str) -> str:
    """``arn:<partition>:iot:<region>:<account>:<resource>`` of the scope's stack."""
    stack = Stack.of(scope)
    return f"arn:{stack.partition}:iot:{stack.region}:{stack.account}:{resource}"


def grant_statements(scope: Construct, grants: tuple[IotGrant, ...]) -> list[iam.PolicyStatement]:
    return [
        iam.PolicyStatement(actions=[grant.action], resources=[iot_arn(scope, r) for r in grant.resources])
        for grant in grants
    ]


class BridgeIdentity(Construct):
    """The bridge's IoT policy, certificate ARN and (when created here) the secret holding PEM and key."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        configuration: ConnectionConfiguration,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.grants = bridge_grants(configuration)
        document = iam.PolicyDocument(statements=grant_statements(self, self.grants))
        self.policy = iot.CfnPolicy(self, "Policy", policy_document=document.to_json())
        self.certificate_secret: secretsmanager.ISecret | None = None
        self.certificate_arn: str | None
        if configuration.create_certificate:
            self.certificate_arn = self._create_certificate(log_retention)
        elif configuration.certificate_id is not None:
            self.certificate_arn = self._import_certificate(configuration.certificate_id)
        else:
            self.certificate_arn = None  # WSS without a certificate: the task role signs the connection

    def _import_certificate(self, certificate_id: str) -> str:
        arn = certificate_id if CERTIFICATE_ARN_RE.match(certificate_id) else iot_arn(self, f"cert/{certificate_id}")
        iot.CfnPolicyPrincipalAttachment(self, "PolicyAttachment", policy_name=self.policy.ref, principal=arn)
        return arn

    def _create_certificate(self, log_retention: logs.RetentionDays) -> str:
        secret = secretsmanager.Secret(
            self,
            "CertificateSecret",
            description="PEM and private key of the bridge's AWS IoT certificate (written by the deployment)",
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            secret,
            "AwsSolutions-SMG4",
            reason="The secret holds an AWS IoT certificate's private key, which Secrets Manager cannot rotate; "
            "rotation is a new certificate: point the deployment at a new secret and the custom resource creates "
            "one and deletes the old.",
        )
        handler = BridgeFunction(
            self,
            "CertificateFunction",
            spec=FunctionSpec(
                package="bridge_certificate",
                handler="lambdas.bridge_certificate.handler.on_event",
                service_name="bridge-certificate",
                description="Creates, re-attaches and deletes the bridge's AWS IoT certificate",
                timeout=CERTIFICATE_FUNCTION_TIMEOUT,
            ),
            log_retention=log_retention,
        )
        role = handler.role
        role.add_to_principal_policy(iam.PolicyStatement(actions=list(IOT_ACTIONS_WITHOUT_RESOURCES), resources=["*"]))
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "iot:AttachPolicy",
                    "iot:DetachPolicy",
                    "iot:DescribeCertificate",
                    "iot:UpdateCertificate",
                    "iot:DeleteCertificate",
                    "iot:ListPrincipalThings",
                    "iot:DetachThingPrincipal",
                ],
                # The certificate's id is only known once it exists.
                resources=[iot_arn(self, "cert/*")],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["secretsmanager:PutSecretValue"], resources=[secret.secret_arn])
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            finding=resource_finding(role, iot_arn(self, "cert/*")),
            reason="The certificate this function manages gets its id from CreateKeysAndCertificate, so the grant "
            "can only name certificates of this account and region; the function touches only its own.",
        )
        provider = cr.Provider(
            self,
            "CertificateProvider",
            on_event_handler=handler.function,
            log_group=logs.LogGroup(
                self, "ProviderLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
            ),
        )
        acknowledge_provider(provider, handler.function)
        resource = CustomResource(
            self,
            "Certificate",
            service_token=provider.service_token,
            resource_type="Custom::BridgeCertificate",
            properties={Property.POLICY_NAME.value: self.policy.ref, Property.SECRET_ID.value: secret.secret_arn},
        )
        self.certificate_secret = secret
        self.certificate_resource = resource
        return resource.get_att_string(Attribute.CERTIFICATE_ARN.value)
