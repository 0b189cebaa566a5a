"""Prove a deployment end to end: ``python -m cli selftest ...`` (or ``--local .state`` against ``make run``).

Steps, each printed on one line with its time; the first failure says what to check, the rest are skipped:

1. connect to AWS IoT Core over WSS with the caller's credentials (SigV4) and subscribe to the test device's
   uplink topic and downlink feedback topics;
2. post a signed synthetic uplink (ThingPark Token with the AS key, or the ChirpStack/TTS ingress token) to the
   ingress;
3. see it arrive on the uplink topic;
4. see its thing registered (``DescribeThing``);
5. publish a test downlink and see its feedback;
6. subscribe a queue of its own to the status topic (``enebular_status_push_sns``), report the test thing connected
   in its shadow (``enebular/things/<thing>/shadow/update``, the agents' topic) and see the status change arrive
   (with ``--dev-eui`` of an existing thing, a synthetic thing of its own instead: a real device's shadow is left
   alone);
7. clean up what it made: the queue and its subscription, the shadow, and the thing when it did not exist before.

Secrets (the AS key, the ingress token) come from the environment variable ``BRIDGE_SELFTEST_SECRET`` or, with
``--local``, from ``make run``'s state directory; they are never printed. Exit status: 0 when every step passed, 1
when one failed, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import hashlib
import json
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, TextIO, get_args
from urllib.parse import quote, urlencode

import boto3
import httpx
import orjson
from botocore.exceptions import BotoCoreError, ClientError

from bridge_container.downlink.reasons import FailureReason, FeedbackStatus
from bridge_container.exceptions import MqttError
from bridge_container.mqtt.crt import CrtMqttClient
from bridge_container.mqtt.port import ClientCallbacks, ClientSettings, InboundMessage, MqttClient
from bridge_container.states import ConnectionState
from bridge_domain.deveui import normalise_dev_eui
from bridge_domain.exceptions import BridgeDomainError
from bridge_domain.naming import ResourceNames, thing_name
from bridge_domain.topics import TopicPattern
from cli.aws import MissingAwsSetupError, aws_session

SECRET_ENV: Final = "BRIDGE_SELFTEST_SECRET"  # noqa: S105 - a variable name, not a secret
ENDPOINTS_FILE: Final = "endpoints.json"  # written by make run into its state directory
LNS_SECRETS_FILE: Final = "lns-secrets.json"
LOCAL_CREDENTIAL: Final = "local"  # moto and the local stand-in accept any credentials
DEFAULT_TIMEOUT_SECS: Final = 20.0
DEFAULT_UPLINK_TOPIC: Final = "tpx/things/{DevEUI}/uplink"
DEFAULT_DOWNLINK_TOPIC: Final = "tpx/things/{DevEUI}/downlink"
WSS_PORT: Final = 443
KEEP_ALIVE_SECS: Final = 60
POLL_SECS: Final = 0.2
HTTP_TIMEOUT_SECS: Final = 10.0
SQS_WAIT_SECS: Final = 2  # long polling, short enough to honour the step's timeout
SELFTEST_FPORT: Final = 223  # the highest application port: no sensor payload decoder is expected on it
DEV_EUI_PREFIX: Final = "5E1F7E57"  # "selftest" in hex-ish, so a leftover thing is recognisable
THINGPARK_CUSTOMER_ID: Final = "100000000"

Lns = Literal["thingpark", "chirpstack", "tts"]


class SelfTestError(Exception):
    """A step failed: what happened, and what to check."""

    def __init__(self, problem: str, check: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.check = check


class UsageError(ValueError):
    """The command line or the local state directory does not say enough."""


@dataclass(frozen=True, slots=True, repr=False)
class Target:
    """The deployment under test; ``secret`` (the AS key or ingress token) never appears in a repr or output."""

    ingress_url: str  # the uplink routes are <ingress_url>/uplinks/<lns>
    lns: Lns
    secret: str | None
    iot_endpoint: str
    region: str
    uplink_topic: str = DEFAULT_UPLINK_TOPIC
    downlink_topic: str = DEFAULT_DOWNLINK_TOPIC
    status_topic: str = field(default_factory=lambda: ResourceNames().status_push_topic)  # a name or an ARN
    as_id: str = "aws-iot-bridge"
    application_id: str | None = None
    dev_eui: str | None = None
    iot_port: int = WSS_PORT
    ca_pem: bytes | None = None  # the local stand-in's CA; AWS IoT's is in the system store
    aws_endpoint_url: str | None = None  # moto, for --local
    profile: str | None = None
    local: bool = False
    timeout_secs: float = DEFAULT_TIMEOUT_SECS

    def __repr__(self) -> str:
        return f"Target(ingress_url={self.ingress_url!r}, lns={self.lns!r}, iot_endpoint={self.iot_endpoint!r})"


# --- the synthetic uplink ---------------------------------------------------------------------------------------
def _iso_millis(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def thingpark_token(values: Sequence[object], query: str, as_key: str) -> str:
    """ThingPark's Token: SHA-256 hex of the signed values, the query before ``&Token`` and the AS key."""
    return hashlib.sha256(("".join(str(value) for value in values) + query + as_key).encode()).hexdigest()


def uplink_request(target: Target, dev_eui: str, marker: int) -> tuple[str, bytes, dict[str, str]]:
    """Path and query, body and headers of one synthetic uplink whose frame counter is ``marker``."""
    now = datetime.now(UTC)
    payload_hex = f"{marker:08x}"
    headers = {"Content-Type": "application/json"}
    base = f"{target.ingress_url.rstrip('/')}/uplinks/{target.lns}"
    if target.lns == "thingpark":
        uplink = {
            "Time": _iso_millis(now),
            "DevEUI": dev_eui,
            "FPort": SELFTEST_FPORT,
            "FCntUp": marker,
            "payload_hex": payload_hex,
            "CustomerID": THINGPARK_CUSTOMER_ID,
        }
        parameters = [
            ("LrnDevEui", dev_eui),
            ("LrnFPort", str(SELFTEST_FPORT)),
            ("LrnInfos", "aws-iot-bridge-selftest"),
            ("AS_ID", target.as_id),
            ("Time", _iso_millis(now)),
        ]
        if target.secret is not None:
            signed = [uplink[name] for name in ("CustomerID", "DevEUI", "FPort", "FCntUp", "payload_hex")]
            query = "&".join(f"{name}={value}" for name, value in parameters)
            parameters.append(("Token", thingpark_token(signed, query, target.secret)))
        url = f"{base}?{urlencode(parameters, quote_via=quote)}"
        return url, orjson.dumps({"DevEUI_uplink": uplink}), headers
    if target.secret is not None:
        headers["Authorization"] = f"Bearer {target.secret}"
    frame = bytes.fromhex(payload_hex)
    if target.lns == "chirpstack":
        event = {
            "deduplicationId": secrets.token_hex(16),
            "time": _iso_millis(now),
            "deviceInfo": {"devEui": dev_eui.lower(), "deviceName": "aws-iot-bridge-selftest"},
            "fCnt": marker,
            "fPort": SELFTEST_FPORT,
            "data": _b64(frame),
        }
        return f"{base}?event=up", orjson.dumps(event), headers
    message = {
        "end_device_ids": {
            "device_id": f"eui-{dev_eui.lower()}",
            "application_ids": {"application_id": target.application_id or ""},
            "dev_eui": dev_eui,
        },
        "received_at": _iso_millis(now),
        "uplink_message": {"f_port": SELFTEST_FPORT, "f_cnt": marker, "frm_payload": _b64(frame)},
    }
    return base, orjson.dumps(message), headers


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- AWS clients ------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Aws:
    """The boto3 clients of the caller's session (moto's endpoint with ``--local``)."""

    session: Any
    endpoint_url: str | None
    iot_data_endpoint: str | None
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        """One client per service, made on first use (boto3 clients are thread-safe)."""
        if service not in self._clients:
            endpoint = self.endpoint_url
            if service == "iot-data" and endpoint is None and self.iot_data_endpoint:
                endpoint = f"https://{self.iot_data_endpoint}"
            self._clients[service] = self.session.client(service, endpoint_url=endpoint)
        return self._clients[service]


def aws_for(target: Target) -> Aws:
    if target.local:
        session = boto3.session.Session(
            aws_access_key_id=LOCAL_CREDENTIAL, aws_secret_access_key=LOCAL_CREDENTIAL, region_name=target.region
        )
    else:
        session = aws_session(target.profile, target.region)
    return Aws(session, target.aws_endpoint_url, target.iot_endpoint)


# --- the MQTT side ----------------------------------------------------------------------------------------------
class Listener:
    """An MQTT 5 client over WSS (SigV4 with the caller's credentials) that keeps what arrives, by topic."""

    def __init__(self, target: Target, aws: Aws) -> None:
        self.messages: list[InboundMessage] = []
        self._local = target.local
        credentials = aws.session.get_credentials()
        if credentials is None:
            raise SelfTestError(
                "no AWS credentials found", "aws configure / AWS_PROFILE / --profile: the caller's credentials"
            )
        frozen = credentials.get_frozen_credentials()
        settings = ClientSettings(
            client_id=f"aws-iot-bridge-selftest-{secrets.token_hex(4)}",
            endpoint=target.iot_endpoint,
            port=target.iot_port,
            protocol="WSS",
            region=target.region,
            keep_alive_secs=KEEP_ALIVE_SECS,
            ca_pem=target.ca_pem,
            access_key_id=frozen.access_key,
            secret_access_key=frozen.secret_key,
            session_token=frozen.token,
        )
        self.client_id = settings.client_id
        self._client = CrtMqttClient(
            settings, ClientCallbacks(on_state=self._on_state, on_message=self.messages.append)
        )

    def _on_state(self, _client: MqttClient, _state: ConnectionState) -> None:
        return None

    async def connect(self, timeout_secs: float) -> None:
        await self._client.start()
        deadline = time.monotonic() + timeout_secs
        while self._client.state is not ConnectionState.OPENED:
            if time.monotonic() > deadline:
                raise SelfTestError(
                    f"not connected after {timeout_secs:g}s (state {self._client.state})",
                    "that make run is running with this state directory"
                    if self._local
                    else "the IoT endpoint (IotDataEndpoint output), the region, and that the caller may iot:Connect",
                )
            await asyncio.sleep(POLL_SECS)

    async def subscribe(self, topic_filter: str) -> None:
        try:
            await self._client.subscribe(topic_filter)
        except MqttError as exc:
            raise SelfTestError(
                f"subscribe {topic_filter}: {exc}", "the caller may iot:Subscribe and iot:Receive"
            ) from exc

    async def publish(self, topic: str, payload: bytes) -> None:
        try:
            await self._client.publish(topic, payload)
        except MqttError as exc:
            raise SelfTestError(f"publish {topic}: {exc}", "the caller may iot:Publish on that topic") from exc

    async def wait_for(self, accept: Callable[[InboundMessage], bool], timeout_secs: float) -> InboundMessage | None:
        deadline = time.monotonic() + timeout_secs
        seen = 0
        while True:
            for message in self.messages[seen:]:
                if accept(message):
                    return message
            seen = len(self.messages)
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(POLL_SECS)

    async def stop(self) -> None:
        await self._client.stop()


# --- the run ----------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Made:
    """What the self-test created, for the cleanup."""

    things: list[str] = field(default_factory=list)  # things that did not exist before the run
    shadow: str | None = None
    queue_url: str | None = None
    subscription_arn: str | None = None


class Reporter:
    """One line per step with its time; remembers the first failure."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failed = False

    @contextlib.asynccontextmanager
    async def step(self, name: str, started_at: float | None = None) -> AsyncIterator[list[str]]:
        """Run a step timed from now (or ``started_at``); the body may append a detail shown after the name.

        A failure is printed with what to check, and raised on.
        """
        detail: list[str] = []
        started = time.monotonic() if started_at is None else started_at
        try:
            try:
                yield detail
            except (ClientError, BotoCoreError, MqttError, OSError) as exc:
                raise SelfTestError(
                    f"{type(exc).__name__}: {exc}", "your AWS credentials and permissions, the region, the network"
                ) from exc
        except SelfTestError as exc:
            self.failed = True
            self._line("FAIL", time.monotonic() - started, f"{name}: {exc.problem}")
            self.out.write(f"        check: {exc.check}\n")
            self.out.flush()
            raise
        self._line("ok", time.monotonic() - started, name + (f": {detail[0]}" if detail else ""))

    def skipped(self, name: str) -> None:
        self.out.write(f"  {'skip':<4}          {name}\n")

    def _line(self, verdict: str, secs: float, text: str) -> None:
        self.out.write(f"  {verdict:<4} {secs:6.2f} s  {text}\n")
        self.out.flush()


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
            detail.append(await _status_change(target, aws, listener, thing, made))
        done += 1
    except SelfTestError:
        for name in STEP_NAMES[done + 1 :]:
            reporter.skipped(name)
    finally:
        await _cleanup(reporter, aws, made, listener)
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


async def _status_change(target: Target, aws: Aws, listener: Listener, device_thing: str, made: Made) -> str:
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
    reported = {"state": {"reported": {"enebular": {"awsiot": {"connected": True}}}}}
    await listener.publish(f"enebular/things/{thing}/shadow/update", orjson.dumps(reported))
    deadline = time.monotonic() + target.timeout_secs
    queue_url = made.queue_url or ""
    while time.monotonic() <= deadline:
        document = await asyncio.to_thread(_received_status, aws, queue_url, thing)
        if document is not None:
            return f"{thing} connected, on {topic_arn.rsplit(':', 1)[-1]}"
    raise SelfTestError(
        f"no status change of {thing} on {target.status_topic} within {target.timeout_secs:g}s",
        "the topic rules enebular_shadow_update and enebular_status_push_rule (enabled, their error log group) "
        "and the role enebular_status_push_role",
    )


async def _cleanup(reporter: Reporter, aws: Aws, made: Made, listener: Listener | None) -> None:
    """Stop the MQTT client and delete what the run made; a failure is reported, not raised."""
    with contextlib.suppress(SelfTestError):
        async with reporter.step("cleanup") as detail:
            if listener is not None:
                await listener.stop()
            removed: list[str] = []
            problems: list[str] = []
            await asyncio.to_thread(_remove, aws, made, removed, problems)
            if problems:
                raise SelfTestError("; ".join(problems), "delete what is named here by hand")
            detail.append("deleted " + ", ".join(removed) if removed else "nothing to delete")


def _remove(aws: Aws, made: Made, removed: list[str], problems: list[str]) -> None:
    def attempt(what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("ResourceNotFoundException", "NotFound"):  # gone already: nothing to say
                problems.append(f"{what}: {code or exc}")
            return
        removed.append(what)

    if made.subscription_arn is not None:
        arn = made.subscription_arn
        attempt("subscription", lambda: aws.client("sns").unsubscribe(SubscriptionArn=arn))
    if made.queue_url is not None:
        url = made.queue_url
        attempt(f"queue {url.rsplit('/', 1)[-1]}", lambda: aws.client("sqs").delete_queue(QueueUrl=url))
    if made.shadow is not None:
        name = made.shadow
        attempt("shadow", lambda: aws.client("iot-data").delete_thing_shadow(thingName=name))
    for thing in made.things:
        attempt(f"thing {thing}", functools.partial(_delete_thing, aws.client("iot"), thing))


def _delete_thing(iot: Any, thing: str) -> None:
    for principal in iot.list_thing_principals(thingName=thing).get("principals", []):
        iot.detach_thing_principal(thingName=thing, principal=principal)
    iot.delete_thing(thingName=thing)


# --- the command line -------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cli selftest", description=__doc__.splitlines()[0])
    parser.add_argument("--local", type=Path, metavar="STATE_DIR", help="test make run's deployment (its .state)")
    parser.add_argument("--ingress-url", help="the IngressUrl output (or <IngressUrl>/connections/<id>)")
    parser.add_argument("--iot-endpoint", help="the IotDataEndpoint output (xxxx-ats.iot.<region>.amazonaws.com)")
    parser.add_argument("--lns", choices=get_args(Lns), default="thingpark", help="which route (default thingpark)")
    parser.add_argument("--as-id", default="aws-iot-bridge", help="ThingPark AS_ID (default aws-iot-bridge)")
    parser.add_argument("--application-id", help="The Things Stack application id (with --lns tts)")
    parser.add_argument("--uplink-topic", help=f"uplinkTopicPattern (default {DEFAULT_UPLINK_TOPIC})")
    parser.add_argument("--downlink-topic", help=f"downlinkTopicPattern (default {DEFAULT_DOWNLINK_TOPIC})")
    parser.add_argument("--status-topic", help="status SNS topic, name or ARN (default enebular_status_push_sns)")
    parser.add_argument("--dev-eui", help="use this DevEUI (default: a new 5E1F7E57xxxxxxxx; its thing is deleted)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECS, help="seconds per waiting step")
    parser.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    parser.add_argument("--profile", help="AWS profile (default: from the AWS configuration)")
    return parser


def _local_target(arguments: argparse.Namespace, secret: str | None) -> Target:
    state_dir: Path = arguments.local
    try:
        endpoints = json.loads((state_dir / ENDPOINTS_FILE).read_text())
        lns_secrets = json.loads((state_dir / LNS_SECRETS_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{state_dir} has no readable {ENDPOINTS_FILE}: is make run running with it?") from exc
    lns: Lns = arguments.lns
    stored = {"thingpark": "asKey", "chirpstack": "chirpstackToken", "tts": "ttsToken"}[lns]
    return Target(
        ingress_url=arguments.ingress_url or endpoints["ingressUrl"],
        lns=lns,
        secret=secret if secret is not None else lns_secrets[stored],
        iot_endpoint=endpoints["iotHost"],
        iot_port=int(endpoints["iotWssPort"]),
        ca_pem=Path(endpoints["caFile"]).read_bytes(),
        region=endpoints["region"],
        aws_endpoint_url=endpoints["awsEndpointUrl"],
        uplink_topic=arguments.uplink_topic or endpoints["uplinkTopicPattern"],
        downlink_topic=arguments.downlink_topic or endpoints["downlinkTopicPattern"],
        status_topic=arguments.status_topic or endpoints["statusTopicArn"],
        as_id=endpoints["asId"],
        application_id=endpoints["ttsApplicationId"],
        dev_eui=arguments.dev_eui,
        local=True,
        timeout_secs=arguments.timeout,
    )


def _deployed_target(arguments: argparse.Namespace, secret: str | None) -> Target:
    missing = [name for name in ("ingress_url", "iot_endpoint") if not getattr(arguments, name)]
    if missing:
        raise UsageError("missing " + ", ".join("--" + name.replace("_", "-") for name in missing) + " (or --local)")
    if arguments.lns == "tts" and not arguments.application_id:
        raise UsageError("--lns tts needs --application-id")
    region = aws_session(arguments.profile, arguments.region).region_name  # credentials and region, or what is missing
    return Target(
        ingress_url=arguments.ingress_url,
        lns=arguments.lns,
        secret=secret,
        iot_endpoint=arguments.iot_endpoint,
        region=region,
        uplink_topic=arguments.uplink_topic or DEFAULT_UPLINK_TOPIC,
        downlink_topic=arguments.downlink_topic or DEFAULT_DOWNLINK_TOPIC,
        status_topic=arguments.status_topic or ResourceNames().status_push_topic,
        as_id=arguments.as_id,
        application_id=arguments.application_id,
        dev_eui=arguments.dev_eui,
        profile=arguments.profile,
        timeout_secs=arguments.timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    if arguments.timeout <= 0:
        print("--timeout must be > 0", file=sys.stderr)
        return 2
    secret = os.environ.get(SECRET_ENV) or None
    try:
        target = _local_target(arguments, secret) if arguments.local else _deployed_target(arguments, secret)
    except (UsageError, MissingAwsSetupError) as exc:
        print(f"selftest: {exc}", file=sys.stderr)
        return 2
    try:
        if target.dev_eui is not None:
            normalise_dev_eui(target.dev_eui)
        TopicPattern.parse(target.uplink_topic)
        TopicPattern.parse(target.downlink_topic, allowed=frozenset({"DevEUI"}))
    except (ValueError, BridgeDomainError) as exc:
        print(f"selftest: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run_selftest(target))
