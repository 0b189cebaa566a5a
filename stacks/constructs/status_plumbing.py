"""enebular-compatible status plumbing: topics, the push role, the topic rules and the status-callback function.

Replaces the seed's manual steps with least privilege: the role ``enebular_status_push_role`` may only publish
to the two topics (not AmazonSNSFullAccess); every rule has an error action; the topics refuse plain HTTP and
are encrypted; each role trusted by AWS IoT only for this account's rules (confused-deputy protection).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from bridge_domain.connection import ConnectionConfiguration
from bridge_domain.deployment import DeploymentSettings
from bridge_domain.naming import ResourceNames
from lambdas.status_callback.environment import EnvVar as StatusEnv
from stacks import rule_sql
from stacks.constructs.bridge_identity import iot_arn
from stacks.constructs.functions import BridgeFunction, FunctionSpec
from stacks.constructs.tables import table
from stacks.nag import acknowledge, arn_finding, resource_finding

# The AWS managed key: AWS IoT publishes through a role of this account, which that key's policy admits.
SNS_KEY_ALIAS = "alias/aws/sns"
STATUS_CALLBACK_TIMEOUT = Duration.seconds(30)
DEAD_LETTER_RETENTION = Duration.days(14)
IDEMPOTENCY_KEY = "id"
IDEMPOTENCY_TTL_ATTRIBUTE = "expiration"
SHADOW_UPDATE_TOPIC = "$aws/things/*/shadow/update"


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One topic rule: its name, SQL, what it does and why."""

    name: str
    sql: str
    description: str
    action: iot.CfnTopicRule.ActionProperty


class StatusPlumbing(Construct):
    """The enebular rules and topics, and the function that consumes the topics."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        configuration: ConnectionConfiguration,
        settings: DeploymentSettings,
        device_status_table: dynamodb.ITable,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        names = configuration.resource_names
        key = kms.Alias.from_alias_name(self, "SnsKey", SNS_KEY_ALIAS)
        self.status_topic = sns.Topic(
            self, "StatusTopic", topic_name=names.status_push_topic, master_key=key, enforce_ssl=True
        )
        self.devicestate_topic = sns.Topic(
            self, "DeviceStateTopic", topic_name=names.devicestate_push_topic, master_key=key, enforce_ssl=True
        )
        self.error_logs = logs.LogGroup(
            self, "RuleErrors", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        rule_names = [names.status_push_rule, names.presence_push_rule, names.devicestate_push_rule]
        self.push_role = iam.Role(
            self,
            "StatusPushRole",
            role_name=names.status_push_role,
            assumed_by=iot_rule_principal(self, rule_names),
            description="enebular status push: AWS IoT rules publish connection status and shadows to SNS",
        )
        self.push_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sns:Publish"], resources=[self.status_topic.topic_arn, self.devicestate_topic.topic_arn]
            )
        )
        republish_rules = [names.shadow_update_rule]
        if settings.lorawan_shadow:
            republish_rules.append(names.lorawan_shadow_rule)
        if settings.lorawan_shadow and rule_sql.shadow_event_kinds(configuration):
            republish_rules.append(names.lorawan_event_shadow_rule)
        self.error_role = self._error_role([*rule_names, *republish_rules])
        self.republish_role = self._republish_role(republish_rules, lorawan=settings.lorawan_shadow)
        self.rules = [self._rule(spec) for spec in self._rule_specs(configuration, names, settings)]
        self.callback = self._status_callback(settings, device_status_table, log_retention)

    def _error_role(self, rule_names: list[str]) -> iam.Role:
        role = iam.Role(
            self,
            "RuleErrorRole",
            assumed_by=iot_rule_principal(self, rule_names),
            description="AWS IoT rules' error action: write the failed message to the rule-error log group",
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                resources=[self.error_logs.log_group_arn],
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            finding=arn_finding(self.error_logs, ":*"),
            reason="AWS IoT names the log streams it creates in the rule-error log group; the grant is that one "
            "group's streams.",
        )
        return role

    def _republish_role(self, rule_names: list[str], *, lorawan: bool) -> iam.Role:
        topics = [SHADOW_UPDATE_TOPIC]
        if lorawan:
            topics.append(f"$aws/things/*/shadow/name/{rule_sql.LORAWAN_SHADOW_NAME}/update")
        role = iam.Role(
            self,
            "ShadowRepublishRole",
            assumed_by=iot_rule_principal(self, rule_names),
            description="AWS IoT rules: republish shadow updates to the reserved shadow topics",
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["iot:Publish"], resources=[iot_arn(self, f"topic/{t}") for t in topics])
        )
        for topic in topics:
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                finding=resource_finding(role, iot_arn(self, f"topic/{topic}")),
                reason="Shadow updates are republished for any thing: the wildcard is the thing-name level of "
                "the reserved shadow update topic, nothing else.",
            )
        return role

    def _rule_specs(
        self, configuration: ConnectionConfiguration, names: ResourceNames, settings: DeploymentSettings
    ) -> list[RuleSpec]:
        def to_sns(topic: sns.ITopic) -> iot.CfnTopicRule.ActionProperty:
            return iot.CfnTopicRule.ActionProperty(
                sns=iot.CfnTopicRule.SnsActionProperty(
                    target_arn=topic.topic_arn, role_arn=self.push_role.role_arn, message_format="RAW"
                )
            )

        def republish(topic: str) -> iot.CfnTopicRule.ActionProperty:
            return iot.CfnTopicRule.ActionProperty(
                republish=iot.CfnTopicRule.RepublishActionProperty(
                    topic=topic, role_arn=self.republish_role.role_arn, qos=1
                )
            )

        specs = [
            RuleSpec(
                names.shadow_update_rule,
                rule_sql.SHADOW_UPDATE_SQL,
                "enebular agents' shadow updates, republished to the reserved shadow topic",
                republish(rule_sql.SHADOW_UPDATE_REPUBLISH_TOPIC),
            ),
            RuleSpec(
                names.status_push_rule,
                rule_sql.STATUS_FROM_SHADOW_SQL,
                "Connection status reported in the shadow (reported.enebular.awsiot.connected) to SNS",
                to_sns(self.status_topic),
            ),
            RuleSpec(
                names.presence_push_rule,
                rule_sql.status_from_presence_sql(configuration.client_id_prefix),
                "Connection status from lifecycle (presence) events to SNS",
                to_sns(self.status_topic),
            ),
            RuleSpec(
                names.devicestate_push_rule,
                rule_sql.DEVICE_STATE_SQL,
                "Shadow documents to SNS",
                to_sns(self.devicestate_topic),
            ),
        ]
        if settings.lorawan_shadow:
            specs.append(
                RuleSpec(
                    names.lorawan_shadow_rule,
                    rule_sql.lorawan_shadow_sql(configuration),
                    "Radio metadata of each uplink into the named shadow 'lorawan'",
                    republish(rule_sql.lorawan_shadow_republish_topic(configuration)),
                )
            )
        if settings.lorawan_shadow and rule_sql.shadow_event_kinds(configuration):
            specs.append(
                RuleSpec(
                    names.lorawan_event_shadow_rule,
                    rule_sql.lorawan_event_shadow_sql(configuration),
                    "Battery, margin and location of status and location events into the named shadow 'lorawan'",
                    republish(rule_sql.lorawan_event_shadow_republish_topic(configuration)),
                )
            )
        return specs

    def _rule(self, spec: RuleSpec) -> iot.CfnTopicRule:
        error_action = iot.CfnTopicRule.ActionProperty(
            cloudwatch_logs=iot.CfnTopicRule.CloudwatchLogsActionProperty(
                log_group_name=self.error_logs.log_group_name, role_arn=self.error_role.role_arn
            )
        )
        return iot.CfnTopicRule(
            self,
            f"Rule{spec.name}",
            rule_name=spec.name,
            topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
                sql=spec.sql,
                aws_iot_sql_version=rule_sql.SQL_VERSION,
                description=spec.description,
                rule_disabled=False,
                actions=[spec.action],
                error_action=error_action,
            ),
        )

    def _status_callback(
        self, settings: DeploymentSettings, device_status_table: dynamodb.ITable, log_retention: logs.RetentionDays
    ) -> BridgeFunction:
        idempotency_table = table(
            self,
            "IdempotencyTable",
            partition_key=IDEMPOTENCY_KEY,
            # In-flight records that expire within hours: nothing to keep after a destroy.
            removal=RemovalPolicy.DESTROY,
            time_to_live_attribute=IDEMPOTENCY_TTL_ATTRIBUTE,
        )
        dead_letters = self.dead_letters = sqs.Queue(
            self,
            "StatusDeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
        )
        acknowledge(
            dead_letters,
            "AwsSolutions-SQS3",
            reason="This queue is itself the dead-letter queue of the status callback (SNS delivery failures and "
            "failed asynchronous invocations); it needs none of its own.",
        )
        environment = {
            StatusEnv.DEVICE_STATUS_TABLE.value: device_status_table.table_name,
            StatusEnv.IDEMPOTENCY_TABLE.value: idempotency_table.table_name,
        }
        if settings.status_webhook_url is not None and settings.status_webhook_secret_arn is not None:
            environment[StatusEnv.WEBHOOK_URL.value] = settings.status_webhook_url
            environment[StatusEnv.WEBHOOK_SECRET_ARN.value] = settings.status_webhook_secret_arn
        callback = BridgeFunction(
            self,
            "StatusCallback",
            spec=FunctionSpec(
                package="status_callback",
                handler="lambdas.status_callback.handler.handler",
                service_name="status-callback",
                description="Keeps device status from the enebular SNS topics and forwards it to the webhook",
                timeout=STATUS_CALLBACK_TIMEOUT,
                environment=environment,
                # A message the callback cannot parse fails the same way every time: straight to the queue,
                # once, instead of two more runs (transient errors are retried inside the invocation).
                async_retry_attempts=0,
            ),
            log_retention=log_retention,
            dead_letter_queue=dead_letters,
        )
        device_status_table.grant_read_write_data(callback.role)
        idempotency_table.grant_read_write_data(callback.role)
        if settings.status_webhook_secret_arn is not None:
            secretsmanager.Secret.from_secret_complete_arn(
                self, "WebhookSecret", settings.status_webhook_secret_arn
            ).grant_read(callback.role)
        for topic in (self.status_topic, self.devicestate_topic):
            topic.add_subscription(subscriptions.LambdaSubscription(callback.function, dead_letter_queue=dead_letters))
        return callback


def iot_rule_principal(scope: Construct, rule_names: list[str]) -> iam.IPrincipal:
    """AWS IoT, for this account's named rules only (confused-deputy protection)."""
    return iam.ServicePrincipal(
        "iot.amazonaws.com",
        conditions={
            "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
            "ArnEquals": {"aws:SourceArn": [iot_arn(scope, f"rule/{name}") for name in rule_names]},
        },
    )


__all__ = ["StatusPlumbing", "iot_rule_principal"]
