"""``make run``: mosquitto, moto, the bridge and a simulated LNS on this machine, wired like a deployment.

Order of start: dev PKI (generated once) → mosquitto behind the AWS IoT Core stand-in (``devtools.iotcore``, which
discards and refuses what IoT Core would, and counts it for the summary) → moto (the control plane: thing type,
the bridge certificate and the status topic, as the CDK deploy would) → the simulated LNS's downlink API → the
bridge (``python -m bridge_container`` as child processes, one per task, their store in the state directory; with
several tasks, a round-robin load balancer in front) → the local connection, created or replaced through the
Connections API → a subscriber counting what reaches mosquitto → the status rule (``devtools.status_rule``) → the
simulated LNS sending uplinks. ``endpoints.json`` in the state directory tells ``python -m cli selftest --local``
where everything is. Stop is the reverse order; each task gets SIGTERM and drains its buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

import boto3
import httpx

from bridge_domain.connection import CONNECTOR_ID
from bridge_domain.lns import LnsKind
from bridge_domain.naming import ResourceNames
from bridge_domain.quotas import CREATE_THING_PER_SEC
from bridge_domain.topics import TopicPattern
from devtools.aws import FAKE_CREDENTIALS, LocalAws
from devtools.balancer import RoundRobinBalancer
from devtools.broker import BrokerPorts, LocalBroker, find_mosquitto
from devtools.http_load import HttpLoad
from devtools.local_lns import LocalLns
from devtools.pki import CertPair, DevPki
from devtools.ports import LOOPBACK, free_port
from devtools.simulator import (
    DEFAULT_MIX,
    LnsEndpoint,
    LnsSimulator,
    SimulatorSettings,
    build_fleet,
    thingpark_sent_report,
)
from devtools.status_rule import LocalStatusRule
from devtools.summary import AwsFigures, BridgeFigures, Snapshot, combine, final_report, parse_metrics, summary_line
from devtools.watcher import BrokerWatcher

logger = logging.getLogger(__name__)

REGION: Final = "eu-central-1"
DEVICE_TYPE: Final = "local-sensor"
CONNECTION_NAME: Final = "make-run"
UPLINK_PATTERN: Final = "tpx/things/{DevEUI}/uplink"
DOWNLINK_PATTERN: Final = "tpx/things/{DevEUI}/downlink"
TTS_APPLICATION_ID: Final = "local-app"
THINGPARK_AS_ID: Final = "make-run-as"
ENDPOINTS_FILE: Final = "endpoints.json"  # read by python -m cli selftest --local
PREFERRED_HTTP_PORT: Final = 8080
BRIDGE_START_TIMEOUT_SECS: Final = 30.0
OPENED_TIMEOUT_SECS: Final = 20.0
BRIDGE_STOP_TIMEOUT_SECS: Final = 20.0
SETTLE_TIMEOUT_SECS: Final = 5.0
POLL_SECS: Final = 0.2
THINGPARK_DOWNLINK_PATH: Final = "/thingpark/lrc/rest/downlink"
DOWNLINK_REPORT_DELAY_SECS: Final = 0.5
LNS_CONNECTIONS: Final = 16  # keep-alive connections from the simulated LNSs to the bridge
OWNER_ONLY: Final = 0o600


class LocalRunError(RuntimeError):
    """A part of the local run did not start or stopped on its own."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What ``make run RUN_ARGS=...`` chooses."""

    rate_per_sec: float = 20.0
    devices: int = 20
    duration_secs: float | None = None
    mix: Mapping[LnsKind, int] = field(default_factory=lambda: dict(DEFAULT_MIX))
    downlink_every_secs: float = 5.0
    summary_every_secs: float = 2.0
    state_dir: Path = Path(".state")
    summary_json: Path | None = None
    tasks: int = 1  # bridge processes behind the local load balancer


# --- the state directory ---------------------------------------------------------------------------------------
def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_ONLY)
    os.fchmod(descriptor, OWNER_ONLY)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as the servers themselves bind: a port whose last connections linger in TIME_WAIT is free for them
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True, slots=True)
class LocalPorts:
    """Ports kept from one run to the next (so a pasted mosquitto_sub command keeps working)."""

    tls: int
    wss: int
    plain: int
    moto: int
    http: int
    tls_unenforced: int
    audit: int
    control: int

    @classmethod
    def load(cls, path: Path) -> LocalPorts:
        saved: dict[str, int] = {}
        with contextlib.suppress(FileNotFoundError, ValueError):
            saved = {key: int(value) for key, value in json.loads(path.read_text()).items()}
        chosen: dict[str, int] = {}
        for name in ("tls", "wss", "plain", "moto", "http", "tls_unenforced", "audit", "control"):
            first_choice = saved.get(name) or (PREFERRED_HTTP_PORT if name == "http" else 0)
            port = first_choice if first_choice and _port_is_free(first_choice) else free_port()
            while port in chosen.values():
                port = free_port()
            chosen[name] = port
        ports = cls(**chosen)
        path.write_text(json.dumps(chosen, indent=2) + "\n")
        return ports


@dataclass(frozen=True, slots=True)
class LocalSecrets:
    """The admin token and the LNS secrets, generated once and kept owner-only in the state directory."""

    admin_token: str
    as_key: str
    chirpstack_token: str
    tts_token: str

    @classmethod
    def load(cls, state_dir: Path) -> LocalSecrets:
        token_path, lns_path = state_dir / "admin-token", state_dir / "lns-secrets.json"
        if not token_path.exists():
            _write_private(token_path, secrets.token_urlsafe(32))
        if not lns_path.exists():
            generated = {
                "asKey": secrets.token_hex(16),
                "chirpstackToken": secrets.token_urlsafe(24),
                "ttsToken": secrets.token_urlsafe(24),
            }
            _write_private(lns_path, json.dumps(generated, indent=2) + "\n")
        lns = json.loads(lns_path.read_text())
        return cls(token_path.read_text().strip(), lns["asKey"], lns["chirpstackToken"], lns["ttsToken"])


# --- the parts -------------------------------------------------------------------------------------------------
def prepare_aws(endpoint_url: str, bridge_cert: CertPair) -> str:
    """What the CDK deploy creates in a real account: the thing type and the bridge certificate. Its ARN."""
    iot = boto3.client("iot", endpoint_url=endpoint_url, region_name=REGION)
    iot.create_thing_type(thingTypeName=DEVICE_TYPE)
    registered = iot.register_certificate_without_ca(certificatePem=bridge_cert.cert_pem, status="ACTIVE")
    return str(registered["certificateArn"])


def create_status_topic(endpoint_url: str) -> str:
    """The status topic the deployment's status rules publish to (``enebular_status_push_sns``). Its ARN."""
    sns = boto3.client("sns", endpoint_url=endpoint_url, region_name=REGION)
    return str(sns.create_topic(Name=ResourceNames().status_push_topic)["TopicArn"])


def count_things(endpoint_url: str) -> int:
    iot = boto3.client("iot", endpoint_url=endpoint_url, region_name=REGION)
    pages = iot.get_paginator("list_things").paginate(thingTypeName=DEVICE_TYPE)
    return sum(len(page.get("things", [])) for page in pages)


def local_connection(
    broker: LocalBroker, bridge_cert: CertPair, certificate_arn: str, local: LocalSecrets, lns_url: str
) -> dict[str, Any]:
    """The connection ``make run`` creates: the seed's shape, pointed at local mosquitto and the simulated LNSs."""
    return {
        "connectorId": CONNECTOR_ID,
        "name": CONNECTION_NAME,
        "configuration": {
            "description": "make run: local mosquitto standing in for AWS IoT Core",
            "uplinkTopicPattern": UPLINK_PATTERN,
            "downlinkTopicPattern": DOWNLINK_PATTERN,
            "deviceType": DEVICE_TYPE,
            "region": REGION,
            "certificateId": certificate_arn,
            "certificate": bridge_cert.cert_pem,
            "privateKey": bridge_cert.key_pem,
            "protocol": "SSL",
            "broker": {"host": broker.host, "port": broker.ports.tls, "caCertificate": broker.pki.ca.cert_pem},
            "lns": [
                {
                    "kind": "thingpark",
                    "asId": THINGPARK_AS_ID,
                    "asKey": local.as_key,
                    "downlinkUrl": f"{lns_url}{THINGPARK_DOWNLINK_PATH}",
                },
                {
                    "kind": "chirpstack",
                    "ingressToken": local.chirpstack_token,
                    "apiUrl": f"{lns_url}/chirpstack/api",
                    "apiToken": "make-run-chirpstack-api",
                },
                {
                    "kind": "tts",
                    "ingressToken": local.tts_token,
                    "apiUrl": f"{lns_url}/tts",
                    "applicationId": TTS_APPLICATION_ID,
                    "apiKey": "make-run-tts-api",
                },
            ],
        },
    }


class BridgeProcess:
    """``python -m bridge_container`` as a child in its own session: Ctrl-C reaches us, we stop it in order."""

    def __init__(self, environment: dict[str, str], port: int, log_path: Path) -> None:
        self.environment = environment
        self.port = port
        self.log_path = log_path
        self._process: asyncio.subprocess.Process | None = None
        self._log: TextIO | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    async def start(self, client: httpx.AsyncClient) -> None:
        self._log = self.log_path.open("w", encoding="utf-8")
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge_container", "--host", LOOPBACK, "--port", str(self.port),
            stdout=self._log, stderr=asyncio.subprocess.STDOUT, env=self.environment, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + BRIDGE_START_TIMEOUT_SECS
        while True:
            if self._process.returncode is not None:
                raise LocalRunError(f"the bridge exited with {self._process.returncode}; see {self.log_path}")
            with contextlib.suppress(httpx.TransportError):
                await client.get(f"{self.url}/healthz")
                return
            if time.monotonic() > deadline:
                raise LocalRunError(f"the bridge did not answer on {self.url} within {BRIDGE_START_TIMEOUT_SECS}s")
            await asyncio.sleep(POLL_SECS)

    async def stop(self) -> int | None:
        """SIGTERM (the bridge drains its buffer), then SIGKILL after the timeout; the exit code."""
        process = self._process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), BRIDGE_STOP_TIMEOUT_SECS)
            except TimeoutError:
                logger.warning("the bridge did not stop within %ss; killing it", BRIDGE_STOP_TIMEOUT_SECS)
                process.kill()
                await process.wait()
        if self._log is not None:
            self._log.close()
        return self.returncode


def bridge_environment(
    aws: LocalAws, store_dir: Path, local: LocalSecrets, port: int, task: int = 1, tasks: int = 1
) -> dict[str, str]:
    """Task ``task`` of ``tasks``: its own task id (so its client IDs are its own); the store and quotas shared."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("AWS_PROFILE", "BRIDGE_CONFIG_FILE", "BRIDGE_CONNECTIONS_TABLE", "BRIDGE_ADMIN_TOKEN_SECRET")
    }
    environment.update(FAKE_CREDENTIALS)
    environment.update(
        {
            "AWS_ENDPOINT_URL": aws.endpoint_url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "BRIDGE_STATE_DIR": str(store_dir),
            "BRIDGE_ADMIN_TOKEN": local.admin_token,
            "BRIDGE_HTTP_HOST": LOOPBACK,
            "BRIDGE_HTTP_PORT": str(port),
            "BRIDGE_TASK_ID": "local" if tasks == 1 else f"local{task}",
        }
    )
    if tasks > 1:
        # CreateThing's 15/s is the account's: tasks registering in-process share it.
        environment["BRIDGE_REGISTRATION_RATE_PER_SEC"] = f"{CREATE_THING_PER_SEC / tasks:g}"
        # a connection created through one task starts on the others within a second
        environment["BRIDGE_CONNECTIONS_SYNC_SECS"] = "1"
    return environment


async def ensure_connection(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> str:
    """Create the local connection, or replace the one a previous run stored (ports or secrets may differ)."""
    listed = await client.get(f"{url}/connections")
    listed.raise_for_status()
    existing = [item for item in listed.json()["connections"] if item["name"] == CONNECTION_NAME]
    if existing:
        response = await client.put(f"{url}/connections/{existing[0]['connectionId']}", json=body)
    else:
        response = await client.post(f"{url}/connections", json=body)
    if response.status_code not in (200, 201):
        raise LocalRunError(f"the Connections API refused the local connection: {response.status_code} {response.text}")
    connection_id: str = response.json()["connectionId"]
    return connection_id


async def wait_opened(client: httpx.AsyncClient, url: str, connection_id: str) -> str:
    deadline = time.monotonic() + OPENED_TIMEOUT_SECS
    state = "unknown"
    while time.monotonic() < deadline:
        response = await client.get(f"{url}/connections/{connection_id}")
        state = str(response.json()["status"]["state"])
        if state == "OPENED":
            break
        await asyncio.sleep(POLL_SECS)
    return state


# --- the run ---------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class RunParts:
    """The running parts the summary reads."""

    broker: LocalBroker
    aws: LocalAws
    bridges: list[BridgeProcess]  # one per task
    watcher: BrokerWatcher
    simulator: LnsSimulator
    lns: LocalLns  # the simulated LNSs' downlink APIs
    url: str  # where the LNSs post: the only task, or the load balancer in front of the tasks
    started_at: float = field(default_factory=time.monotonic)

    def exited(self) -> BridgeProcess | None:
        """A task that stopped on its own, if any."""
        return next((bridge for bridge in self.bridges if bridge.returncode is not None), None)


async def task_figures(parts: RunParts, client: httpx.AsyncClient) -> list[BridgeFigures]:
    """Each task's /metrics, in task order."""
    answers = await asyncio.gather(*(client.get(f"{bridge.url}/metrics") for bridge in parts.bridges))
    return [parse_metrics(answer.text) for answer in answers]


async def snapshot(parts: RunParts, client: httpx.AsyncClient, things: int) -> Snapshot:
    by_task = await task_figures(parts, client)
    figures = combine(by_task)
    stats, watched = parts.simulator.stats, parts.watcher.stats
    stand_in = parts.broker.stand_in
    aws = AwsFigures.from_report(await asyncio.to_thread(stand_in.report)) if stand_in else AwsFigures()
    return Snapshot(
        elapsed_secs=time.monotonic() - parts.started_at,
        lns_sent=stats.sent,
        lns_accepted=stats.accepted,
        lns_statuses=dict(stats.by_status),
        bridge=figures,
        at_broker=watched.uplinks,
        devices_seen_at_broker=len(watched.uplink_devices),
        things_registered=things,
        downlinks_published=watched.downlinks_published,
        downlinks_at_lns=len(parts.lns.requests),
        feedback=dict(watched.feedback),
        aws=aws,
        accepted_by_task=[task.accepted for task in by_task],
        downlinks_sent_by_task=[task.downlinks_sent for task in by_task],
    )


def write_endpoints(state_dir: Path, parts: RunParts, connection_id: str, status_topic_arn: str) -> None:
    """What ``python -m cli selftest --local`` needs (no secret: those stay in lns-secrets.json)."""
    broker = parts.broker
    endpoints = {
        "ingressUrl": f"{parts.url}/connections/{connection_id}",
        "iotHost": broker.host,
        "iotWssPort": broker.ports.wss,
        "caFile": str(broker.ca_file.resolve()),
        "awsEndpointUrl": parts.aws.endpoint_url,
        "region": REGION,
        "uplinkTopicPattern": UPLINK_PATTERN,
        "downlinkTopicPattern": DOWNLINK_PATTERN,
        "statusTopicArn": status_topic_arn,
        "asId": THINGPARK_AS_ID,
        "ttsApplicationId": TTS_APPLICATION_ID,
        "tasks": [bridge.url for bridge in parts.bridges],
    }
    (state_dir / ENDPOINTS_FILE).write_text(json.dumps(endpoints, indent=2) + "\n")


def print_banner(out: TextIO, options: RunOptions, parts: RunParts, connection_id: str, state: str, fleet: str) -> None:
    broker, state_dir = parts.broker, options.state_dir.resolve()
    logs = ", ".join(str(bridge.log_path.resolve()) for bridge in parts.bridges)
    if len(parts.bridges) == 1:
        bridge_line = f"  bridge: {parts.url}  (/healthz /metrics /docs /connections)"
    else:
        tasks = "  ".join(bridge.url for bridge in parts.bridges)
        bridge_line = (
            f"  bridge: {len(parts.bridges)} tasks behind the load balancer {parts.url} (round-robin per "
            f"connection); each task: {tasks}"
        )
    lines = [
        f"aws-iot-bridge local run (state in {state_dir}; bridge log {logs})",
        f"  AWS IoT Core stand-in (enforces IoT Core's rules) in front of mosquitto: mTLS {broker.host}:"
        f"{broker.ports.tls}  WSS {broker.host}:{broker.ports.wss}  violations "
        f"http://{broker.host}:{broker.ports.control}/violations",
        f"  mosquitto's own listeners, held to no rule: plain (observer) {broker.host}:{broker.ports.plain}  "
        f"mTLS {broker.host}:{broker.ports.tls_unenforced}",
        f"  moto, standing in for the AWS control plane: {parts.aws.endpoint_url}",
        bridge_line,
        f"  console: {parts.url}/console  (log in with the admin token in {state_dir / 'admin-token'})",
        f"  connection {connection_id}: {state}; {fleet} at {options.rate_per_sec:g} uplinks/s",
        "",
        "Watch the uplinks arrive (on the observer port: a whole fleet's uplinks are more than one AWS connection "
        "may receive):",
        f"  mosquitto_sub -h {broker.host} -p {broker.ports.plain} -t 'tpx/things/+/uplink' -v",
        "Use the Connections API:",
        f'  curl -s -H "Authorization: Bearer $(cat {state_dir / "admin-token"})" {parts.url}/connections',
        "Prove it end to end (uplink, IoT Core, thing, downlink, status) from another terminal:",
        f"  .venv/bin/python -m cli selftest --local {state_dir}",
        "",
        "Ctrl-C stops everything." if options.duration_secs is None else f"Stops after {options.duration_secs:g}s.",
    ]
    out.write("\n".join(lines) + "\n")
    out.flush()


@contextlib.asynccontextmanager
async def _stop_on_signals(stop: asyncio.Event) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _every(period_secs: float, stop: asyncio.Event) -> AsyncIterator[None]:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period_secs)
        if not stop.is_set():
            yield


async def _start_bridges(
    stack: contextlib.AsyncExitStack,
    options: RunOptions,
    ports: LocalPorts,
    aws: LocalAws,
    local: LocalSecrets,
    client: httpx.AsyncClient,
) -> tuple[list[BridgeProcess], str]:
    """One task on the HTTP port, or ``options.tasks`` tasks behind the load balancer on it; and the URL to use."""
    state_dir, tasks = options.state_dir, options.tasks
    bridges = []
    for task in range(1, tasks + 1):
        port = ports.http if tasks == 1 else free_port()
        log_path = state_dir / ("bridge.log" if tasks == 1 else f"bridge-{task}.log")
        environment = bridge_environment(aws, state_dir / "store", local, port, task, tasks)
        bridges.append(BridgeProcess(environment, port, log_path))
    for bridge in bridges:
        stack.push_async_callback(bridge.stop)
    await asyncio.gather(*(bridge.start(client) for bridge in bridges))
    if tasks == 1:
        return bridges, bridges[0].url
    balancer = await stack.enter_async_context(RoundRobinBalancer(ports.http, [bridge.port for bridge in bridges]))
    return bridges, balancer.url


async def run(options: RunOptions, out: TextIO = sys.stdout) -> int:
    """Start everything, run until Ctrl-C or the duration, stop everything; the process exit code."""
    find_mosquitto()  # fail before anything starts when it is missing
    state_dir = options.state_dir
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ports = LocalPorts.load(state_dir / "ports.json")
    local = LocalSecrets.load(state_dir)
    pki = DevPki(state_dir / "pki")
    bridge_cert, watch_cert, rules_cert = pki.client("bridge"), pki.client("watcher"), pki.client("rules")
    stop = asyncio.Event()
    fleet = build_fleet(options.devices, options.mix)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(_stop_on_signals(stop))
        broker = stack.enter_context(
            LocalBroker(
                state_dir / "broker",
                pki,
                BrokerPorts(ports.tls, ports.wss, ports.plain, ports.tls_unenforced, ports.audit, ports.control),
            )
        )
        aws = stack.enter_context(LocalAws(ports.moto))
        os.environ.update(FAKE_CREDENTIALS)  # this process's own boto3 calls go to moto too
        certificate_arn = await asyncio.to_thread(prepare_aws, aws.endpoint_url, bridge_cert)
        status_topic_arn = await asyncio.to_thread(create_status_topic, aws.endpoint_url)
        lns = stack.enter_context(LocalLns())  # the simulated LNSs' downlink APIs
        client = await stack.enter_async_context(
            httpx.AsyncClient(headers={"Authorization": f"Bearer {local.admin_token}"}, timeout=10.0)
        )
        bridges, url = await _start_bridges(stack, options, ports, aws, local, client)
        body = local_connection(broker, bridge_cert, certificate_arn, local, lns.url)
        connection_id = await ensure_connection(client, bridges[0].url, body)
        states = await asyncio.gather(*(wait_opened(client, bridge.url, connection_id) for bridge in bridges))
        state = "/".join(sorted(set(states)))
        watcher = BrokerWatcher(
            broker,
            watch_cert,
            TopicPattern.parse(UPLINK_PATTERN),
            TopicPattern.parse(DOWNLINK_PATTERN, allowed=frozenset({"DevEUI"})),
        )
        stack.push_async_callback(watcher.stop)
        await watcher.start()
        status_rule = LocalStatusRule(broker, rules_cert, aws.endpoint_url, REGION, status_topic_arn)
        stack.push_async_callback(status_rule.stop)
        await status_rule.start()
        ingress = f"/connections/{connection_id}/uplinks"
        endpoints: dict[LnsKind, LnsEndpoint] = {
            "thingpark": LnsEndpoint("thingpark", f"{ingress}/thingpark", local.as_key, as_id=THINGPARK_AS_ID),
            "chirpstack": LnsEndpoint("chirpstack", f"{ingress}/chirpstack", local.chirpstack_token),
            "tts": LnsEndpoint("tts", f"{ingress}/tts", local.tts_token, application_id=TTS_APPLICATION_ID),
        }
        load = await stack.enter_async_context(HttpLoad(LOOPBACK, ports.http, LNS_CONNECTIONS))
        simulator = LnsSimulator(fleet, endpoints, SimulatorSettings(options.rate_per_sec), load)
        parts = RunParts(broker, aws, bridges, watcher, simulator, lns, url)
        write_endpoints(state_dir, parts, connection_id, status_topic_arn)
        kinds = {kind: sum(1 for device in fleet if device.lns == kind) for kind in ("thingpark", "chirpstack", "tts")}
        fleet_text = f"{len(fleet)} devices (" + ", ".join(f"{n} {k}" for k, n in kinds.items() if n) + ")"
        print_banner(out, options, parts, connection_id, state, fleet_text)
        return await _run_loops(options, parts, client, stop, out)
    return 1  # pragma: no cover - the block above always returns or raises


async def _run_loops(
    options: RunOptions, parts: RunParts, client: httpx.AsyncClient, stop: asyncio.Event, out: TextIO
) -> int:
    things = 0

    async def refresh_things() -> None:
        nonlocal things
        async for _ in _every(max(options.summary_every_secs, 2.0), stop):
            things = await asyncio.to_thread(count_things, parts.aws.endpoint_url)

    async def send_downlinks() -> None:
        if options.downlink_every_secs <= 0:
            return
        devices = parts.simulator.devices
        sequence = 0
        async for _ in _every(options.downlink_every_secs, stop):
            device = devices[sequence % len(devices)]
            sequence += 1
            await parts.watcher.send_downlink(device.dev_eui, device.lns, sequence)

    async def report_thingpark_downlinks() -> None:
        """ThingPark's part after a downlink: the Sent report, a moment later, as its radio would confirm it."""
        seen = 0
        async for _ in _every(DOWNLINK_REPORT_DELAY_SECS, stop):
            requests = parts.lns.requests
            for request in requests[seen:]:
                if request.path.endswith(THINGPARK_DOWNLINK_PATH):
                    await parts.simulator.send_report(
                        thingpark_sent_report(request.query, parts.simulator.endpoints["thingpark"])
                    )
            seen = len(requests)

    async def summarise() -> None:
        previous = await snapshot(parts, client, things)
        async for _ in _every(options.summary_every_secs, stop):
            current = await snapshot(parts, client, things)
            out.write(summary_line(current, previous) + "\n")
            out.flush()
            previous = current
            exited = parts.exited()
            if exited is not None:
                out.write(f"the bridge exited with {exited.returncode}; see {exited.log_path}\n")
                stop.set()

    async def deadline() -> None:
        if options.duration_secs is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), options.duration_secs)
            stop.set()

    async with asyncio.TaskGroup() as group:
        group.create_task(parts.simulator.run(stop), name="simulator")
        group.create_task(refresh_things(), name="things")
        group.create_task(send_downlinks(), name="downlinks")
        group.create_task(report_thingpark_downlinks(), name="downlink-reports")
        group.create_task(summarise(), name="summary")
        group.create_task(deadline(), name="deadline")
    last = await _settle(parts, client)
    out.write("stopping...\n" + final_report(last) + "\n")
    out.flush()
    if options.summary_json is not None:
        options.summary_json.write_text(json.dumps(last.to_json(), indent=2) + "\n")
    if parts.exited() is not None:
        return 1
    if options.duration_secs is not None and last.at_broker == 0:
        out.write("nothing reached mosquitto: see the bridge log\n")
        return 1
    return 0


async def _settle(parts: RunParts, client: httpx.AsyncClient) -> Snapshot:
    """The last snapshot, once what the bridge accepted has been published and reached the broker (bounded)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECS
    things = await asyncio.to_thread(count_things, parts.aws.endpoint_url)
    while True:
        current = await snapshot(parts, client, things)
        settled = current.bridge.published + sum(current.bridge.dropped.values()) >= current.bridge.accepted
        if (settled and current.at_broker >= current.bridge.published) or time.monotonic() > deadline:
            return current
        await asyncio.sleep(POLL_SECS)
