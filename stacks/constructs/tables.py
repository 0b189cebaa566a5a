"""DynamoDB tables: on-demand, encrypted with a KMS key, point-in-time recovery, removal policy from the config."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct


def removal_policy(destroy_removes_data: bool) -> RemovalPolicy:
    """Data survives ``cdk destroy`` unless the configuration says the teardown removes it."""
    return RemovalPolicy.DESTROY if destroy_removes_data else RemovalPolicy.RETAIN


def table(
    scope: Construct,
    construct_id: str,
    *,
    partition_key: str,
    removal: RemovalPolicy,
    time_to_live_attribute: str | None = None,
) -> dynamodb.Table:
    """A string-keyed table with the settings every table of this app shares."""
    return dynamodb.Table(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(name=partition_key, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        time_to_live_attribute=time_to_live_attribute,
        removal_policy=removal,
    )
