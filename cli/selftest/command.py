"""``python -m cli selftest``: the command line, for a deployment or for ``make run`` (``--local``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from bridge_domain.deveui import normalise_dev_eui
from bridge_domain.exceptions import BridgeDomainError
from bridge_domain.naming import ResourceNames
from bridge_domain.topics import TopicPattern
from cli.aws import MissingAwsSetupError, aws_session
from cli.selftest.steps import run_selftest
from cli.selftest.target import (
    DEFAULT_DOWNLINK_TOPIC,
    DEFAULT_TIMEOUT_SECS,
    DEFAULT_UPLINK_TOPIC,
    ENDPOINTS_FILE,
    LNS_SECRETS_FILE,
    SECRET_ENV,
    Lns,
    Target,
    UsageError,
)

DESCRIPTION = "Prove a deployment end to end: uplink, AWS IoT Core, thing, downlink, status; then clean up."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cli selftest", description=DESCRIPTION)
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
