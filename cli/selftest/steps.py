"""The steps of a run, one line each with its time, then the cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
from typing import Final, TextIO

import httpx
import orjson
from botocore.exceptions import ClientError

from bridge_container.downlink.reasons import FailureReason, FeedbackStatus
from bridge_container.mqtt.port import InboundMessage
from bridge_domain.deveui import normalise_dev_eui
from bridge_domain.naming import thing_name
from bridge_domain.topics import TopicPattern
from cli.selftest.cleanup import cleanup
from cli.selftest.clients import Aws, Listener, aws_for
from cli.selftest.report import Reporter
from cli.selftest.status import status_change
from cli.selftest.target import (
    DEV_EUI_PREFIX,
    HTTP_TIMEOUT_SECS,
    POLL_SECS,
    SECRET_ENV,
    SELFTEST_FPORT,
    Made,
    SelfTestError,
    Target,
)
from cli.selftest.uplink import uplink_request

STEP_NAMES: Final = (
    "connect to AWS IoT Core over WSS",
    "uplink accepted by the ingress",
    "uplink arrived on AWS IoT Core",
    "thing registered",
    "downlink feedback",
    "status change delivered",
)


async def run_selftest(target: Target, out: TextIO = sys.stdout) -> int:
    """Run every step, then the cleanup; 0 when all passed, else 1."""
    dev_eui = normalise_dev_eui(target.dev_eui or DEV_EUI_PREFIX + secrets.token_hex(4))
    thing = thing_name(dev_eui)
    aws = aws_for(target)
    uplink_pattern = TopicPattern.parse(target.uplink_topic)
    downlink_pattern = TopicPattern.parse(target.downlink_topic, allowed=frozenset({"DevEUI"}))
    uplink_topic = uplink_pattern.render({"DevEUI": dev_eui})
    downlink_topic = downlink_pattern.render({"DevEUI": dev_eui})
    reporter = Reporter(out)
    made = Made()
    started = time.monotonic()
    out.write(f"self-test of {target.ingress_url} ({target.lns}) with DevEUI {dev_eui}\n")
    listener: Listener | None = None
    done = 0
    try:
        async with reporter.step(STEP_NAMES[0]) as detail:
            listener = Listener(target, aws)
            await listener.connect(target.timeout_secs)
            await listener.subscribe(uplink_topic)
            await listener.subscribe(downlink_topic + "/+")
            detail.append(f"{target.iot_endpoint}:{target.iot_port} as {listener.client_id}")
        done += 1
        marker = secrets.randbelow(2**31)
        async with reporter.step(STEP_NAMES[1]) as detail:
            if not await asyncio.to_thread(_thing_exists, aws, thing):
                made.things.append(thing)  # made by this run (the bridge registers it): the cleanup deletes it
            posted_at = time.monotonic()
            detail.append(await _post_uplink(target, dev_eui, marker))
        done += 1
        async with reporter.step(STEP_NAMES[2], started_at=posted_at) as detail:  # from the POST to its arrival
            detail.append(await _uplink_arrived(target, listener, uplink_topic, marker))
        done += 1
        async with reporter.step(STEP_NAMES[3]) as detail:
            detail.append(await _thing_registered(target, aws, thing))
        done += 1
        async with reporter.step(STEP_NAMES[4]) as detail:
            detail.append(await downlink_feedback(target, listener, downlink_topic, dev_eui))
        done += 1
        async with reporter.step(STEP_NAMES[5]) as detail:
            detail.append(await status_change(target, aws, listener, thing, made))
        done += 1
    except SelfTestError:
        for name in STEP_NAMES[done + 1 :]:
            reporter.skipped(name)
    finally:
        await cleanup(reporter, aws, made, listener)
    elapsed = time.monotonic() - started
    out.write(("FAILED" if reporter.failed else "passed") + f" in {elapsed:.1f} s\n")
    out.flush()
    return 1 if reporter.failed else 0


async def _post_uplink(target: Target, dev_eui: str, marker: int) -> str:
    url, body, headers = uplink_request(target, dev_eui, marker)
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECS) as client:
            response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise SelfTestError(
            f"no answer from {target.ingress_url}: {type(exc).__name__}",
            "the ingress URL (IngressUrl output), DNS, and that the load balancer admits this address",
        ) from exc
    if response.status_code != httpx.codes.ACCEPTED:
        raise SelfTestError(
            f"the ingress answered {response.status_code}: {_answer_text(response)}", _ingress_hint(target, response)
        )
    return str(response.status_code)


def _answer_text(response: httpx.Response) -> str:
    try:
        document = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(document, dict) and "error" in document:
        return f"{document['error']}: {document.get('message', '')}".rstrip(": ")
    return str(document)[:200]


def _ingress_hint(target: Target, response: httpx.Response) -> str:
    if response.status_code == httpx.codes.UNAUTHORIZED:
        what = "the AS key" if target.lns == "thingpark" else "the ingress token"
        return f"{what} in {SECRET_ENV} is the connection's (and the clocks agree within maxTimeDriftSecs)"
    if response.status_code == httpx.codes.NOT_FOUND:
        return "the ingress URL: <IngressUrl>/uplinks/<lns>, or <IngressUrl>/connections/<id> when several run"
    if response.status_code == httpx.codes.TOO_MANY_REQUESTS:
        return "the bridge is saturated (buffer full): its metrics and alarms"
    return "the bridge's log and the connection's configuration (lns section)"


async def _uplink_arrived(target: Target, listener: Listener, topic: str, marker: int) -> str:
    def ours(message: InboundMessage) -> bool:
        return message.topic == topic and str(marker) in message.payload.decode("utf-8", "replace")

    message = await listener.wait_for(ours, target.timeout_secs)
    if message is None:
        raise SelfTestError(
            f"nothing on {topic} within {target.timeout_secs:g}s",
            "the connection's state (GET /connections/<id>), uplinkTopicPattern, and the bridge's log "
            "(dropped or refused uplinks in /metrics)",
        )
    return topic


def _thing_exists(aws: Aws, thing: str) -> bool:
    try:
        aws.client("iot").describe_thing(thingName=thing)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return False
        raise SelfTestError(f"DescribeThing: {exc}", "the caller may iot:DescribeThing") from exc
    return True


async def _thing_registered(target: Target, aws: Aws, thing: str) -> str:
    deadline = time.monotonic() + target.timeout_secs
    while True:
        try:
            described = await asyncio.to_thread(aws.client("iot").describe_thing, thingName=thing)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise SelfTestError(f"DescribeThing: {exc}", "the caller may iot:DescribeThing") from exc
        else:
            return f"{thing} (thing type {described.get('thingTypeName', 'none')})"
        if time.monotonic() > deadline:
            raise SelfTestError(
                f"no thing {thing} within {target.timeout_secs:g}s",
                "the connection has registerThings on, the registration function's log and its dead letters",
            )
        await asyncio.sleep(POLL_SECS * 5)


async def downlink_feedback(target: Target, listener: Listener, topic: str, dev_eui: str) -> str:
    correlation_id = f"selftest-{secrets.token_hex(6)}"
    document = {"payload_hex": "00", "FPort": SELFTEST_FPORT, "lns": target.lns, "correlationId": correlation_id}
    await listener.publish(topic, orjson.dumps(document))

    def ours(message: InboundMessage) -> bool:
        if not message.topic.startswith(topic + "/"):
            return False
        with contextlib.suppress(ValueError):
            return bool(orjson.loads(message.payload).get("correlationId") == correlation_id)
        return False

    message = await listener.wait_for(ours, target.timeout_secs)
    if message is None:
        raise SelfTestError(
            f"no feedback on {topic}/+ within {target.timeout_secs:g}s",
            "downlinkTopicPattern, the bridge's downlink subscription (its log), and the caller may iot:Publish",
        )
    feedback = orjson.loads(message.payload)
    status, reason = str(feedback.get("status", "")), str(feedback.get("reason", ""))
    if status == FeedbackStatus.FAILED and reason not in _NETWORK_SERVER_ANSWERS:
        detail = f": {feedback['detail']}" if "detail" in feedback else ""
        raise SelfTestError(
            f"the bridge could not hand the downlink to the network server ({reason}{detail})",
            _DOWNLINK_HINTS.get(reason, "the bridge's log and the connection's lns section"),
        )
    return f"{status}{f' ({reason})' if reason else ''} for {dev_eui}"


# The network server answered: for a synthetic DevEUI it knows nothing of, a refusal proves the path as well.
_NETWORK_SERVER_ANSWERS: Final = frozenset({FailureReason.LNS_REJECTED, FailureReason.LNS_REPORTED_FAILURE})
_DOWNLINK_HINTS: Final[dict[str, str]] = {
    FailureReason.LNS_UNAVAILABLE: "the lns section's downlinkUrl/apiUrl and that the bridge's tasks can reach it",
    FailureReason.NO_LNS: "the connection's lns section has an entry for --lns",
    FailureReason.INVALID_DOCUMENT: "downlinkTopicPattern and the bridge's downlink document settings",
}
