"""The Basic Ingest rule: uplinks published to ``$aws/rules/<rule>/...`` go to an encrypted SQS queue.

A queue is what a consumer that reads only through rules needs by default: every uplink kept until it is
processed (4 days, a dead-letter queue after repeated failures), read by a Lambda event source or any worker,
without a publish charge on the way in. Other actions (Kinesis, Timestream, S3, ...) can be added to the rule.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from bridge_domain.connection import ConnectionConfiguration
from stacks import rule_sql
from stacks.constructs.status_plumbing import iot_rule_principal
from stacks.nag import acknowledge, arn_finding

UPLINK_RETENTION = Duration.days(4)
DEAD_LETTER_RETENTION = Duration.days(14)
# A message the consumer failed this many times goes to the dead-letter queue instead of blocking others.
MAX_RECEIVE_COUNT = 5


class UplinkIngestRule(Construct):
    """The rule named ``basicIngestRule``, its queue and dead-letter queue, and the two roles AWS IoT uses."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        configuration: ConnectionConfiguration,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        rule_name = configuration.basic_ingest_rule
        dead_letters = sqs.Queue(
            self,
            "UplinkDeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
        )
        acknowledge(
            dead_letters,
            "AwsSolutions-SQS3",
            reason="This queue is itself the dead-letter queue of the uplink queue; it needs none of its own.",
        )
        self.queue = sqs.Queue(
            self,
            "Uplinks",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=UPLINK_RETENTION,
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=MAX_RECEIVE_COUNT, queue=dead_letters),
        )
        self.error_logs = logs.LogGroup(
            self, "RuleErrors", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        send_role = iam.Role(
            self,
            "SendRole",
            assumed_by=iot_rule_principal(self, [rule_name]),
            description="AWS IoT Basic Ingest rule: send uplinks to the uplink queue",
        )
        # The SQS action sends, nothing else (grant_send_messages would add GetQueueAttributes and GetQueueUrl).
        send_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.queue.queue_arn])
        )
        error_role = iam.Role(
            self,
            "ErrorRole",
            assumed_by=iot_rule_principal(self, [rule_name]),
            description="AWS IoT Basic Ingest rule's error action: write the failed uplink to its log group",
        )
        error_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                resources=[self.error_logs.log_group_arn],
            )
        )
        acknowledge(
            error_role,
            "AwsSolutions-IAM5",
            finding=arn_finding(self.error_logs, ":*"),
            reason="AWS IoT names the log streams it creates in the rule-error log group; the grant is that one "
            "group's streams.",
        )
        self.rule = iot.CfnTopicRule(
            self,
            "Rule",
            rule_name=rule_name,
            topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
                sql=rule_sql.basic_ingest_sql(configuration),
                aws_iot_sql_version=rule_sql.SQL_VERSION,
                description="Uplinks the bridge publishes through Basic Ingest, to the uplink queue",
                rule_disabled=False,
                actions=[
                    iot.CfnTopicRule.ActionProperty(
                        sqs=iot.CfnTopicRule.SqsActionProperty(
                            queue_url=self.queue.queue_url, role_arn=send_role.role_arn, use_base64=False
                        )
                    )
                ],
                error_action=iot.CfnTopicRule.ActionProperty(
                    cloudwatch_logs=iot.CfnTopicRule.CloudwatchLogsActionProperty(
                        log_group_name=self.error_logs.log_group_name, role_arn=error_role.role_arn
                    )
                ),
            ),
        )


__all__ = ["UplinkIngestRule"]
