"""The status step: a queue of the run's own on the status topic, and a shadow report of the test thing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from typing import Any, Final

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from cli.selftest.clients import Aws, Listener
from cli.selftest.target import DEV_EUI_PREFIX, SQS_WAIT_SECS, Made, SelfTestError, Target

STATUS_REPORT_AGAIN_SECS: Final = 6.0  # a few long polls of the queue


def _status_topic_arn(aws: Aws, name_or_arn: str) -> str:
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    sns = aws.client("sns")
    for page in sns.get_paginator("list_topics").paginate():
        for topic in page.get("Topics", []):
            if topic["TopicArn"].rsplit(":", 1)[-1] == name_or_arn:
                return str(topic["TopicArn"])
    raise SelfTestError(
        f"no SNS topic {name_or_arn} in this account and region",
        "--status-topic (the deployment's resource suffix) and --region",
    )


def _subscribe_queue(aws: Aws, topic_arn: str, made: Made) -> None:
    sqs, sns = aws.client("sqs"), aws.client("sns")
    made.queue_url = sqs.create_queue(QueueName=f"aws-iot-bridge-selftest-{secrets.token_hex(4)}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=made.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=made.queue_url, Attributes={"Policy": json.dumps(policy)})
    made.subscription_arn = sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True
    )["SubscriptionArn"]


def _connected_text(document: dict[str, Any]) -> str:
    """``connected`` or ``disconnected``, as the current shadow document of a status message says."""
    with contextlib.suppress(KeyError, TypeError):
        flag = document["current"]["state"]["reported"]["enebular"]["awsiot"]["connected"]
        return "connected" if flag else "disconnected"
    return "status changed"


def _received_status(aws: Aws, queue_url: str, thing: str) -> dict[str, Any] | None:
    answer = aws.client("sqs").receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=SQS_WAIT_SECS
    )
    for message in answer.get("Messages", []):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            envelope = json.loads(message["Body"])
            document = json.loads(envelope["Message"]) if "Message" in envelope else envelope
            if isinstance(document, dict) and document.get("thingName") == thing:
                return document
    return None


async def status_change(target: Target, aws: Aws, listener: Listener, device_thing: str, made: Made) -> str:
    """The status change goes through the shadow of the test's own thing; never a real device's (``--dev-eui``)."""
    thing = device_thing
    if device_thing not in made.things:
        thing = DEV_EUI_PREFIX + secrets.token_hex(4).upper()
        try:
            await asyncio.to_thread(aws.client("iot").create_thing, thingName=thing)
        except ClientError as exc:
            raise SelfTestError(f"CreateThing {thing}: {exc}", "the caller may iot:CreateThing") from exc
        made.things.append(thing)
    try:
        topic_arn = await asyncio.to_thread(_status_topic_arn, aws, target.status_topic)
        await asyncio.to_thread(_subscribe_queue, aws, topic_arn, made)
    except (ClientError, BotoCoreError) as exc:
        raise SelfTestError(
            f"subscribing a queue to {target.status_topic}: {exc}",
            "the caller may sqs:CreateQueue, sqs:SetQueueAttributes and sns:Subscribe",
        ) from exc
    made.shadow = thing
    deadline = time.monotonic() + target.timeout_secs
    queue_url = made.queue_url or ""
    connected, report_at = True, 0.0
    while (now := time.monotonic()) <= deadline:
        if now >= report_at:
            # A new queue's policy can take a moment to apply, and only a change of the flag is pushed: while
            # nothing arrives, report the other value again.
            reported = {"state": {"reported": {"enebular": {"awsiot": {"connected": connected}}}}}
            await listener.publish(f"enebular/things/{thing}/shadow/update", orjson.dumps(reported))
            connected, report_at = not connected, now + STATUS_REPORT_AGAIN_SECS
        document = await asyncio.to_thread(_received_status, aws, queue_url, thing)
        if document is not None:
            return f"{thing} {_connected_text(document)}, on {topic_arn.rsplit(':', 1)[-1]}"
    raise SelfTestError(
        f"no status change of {thing} on {target.status_topic} within {target.timeout_secs:g}s",
        "the topic rules enebular_shadow_update and enebular_status_push_rule (enabled, their error log group) "
        "and the role enebular_status_push_role",
    )
