"""``deliveryAck: published``: a bridge killed with SIGKILL under load kept nothing it had answered 2xx for."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from devtools.broker import LocalBroker
from devtools.pki import DevPki
from devtools.ports import free_port, wait_for_port
from tests.integration.uplink.conftest import connection_document

pytestmark = pytest.mark.integration

RATE_PER_SEC = 500
SENDERS = 10  # concurrent LNS connections; each waits for its PUBACK, so 10 x ~20 ms carry 500/s
KILL_AFTER_SECS = 2.0
CHIRPSTACK_TOKEN = "kill-test-ingress-token"
MIN_ANSWERED = 200  # the 2 s before the kill carry 1,000 at the offered rate; a slow, shared machine answers fewer


def chirpstack_up(n: int) -> bytes:
    return orjson.dumps(
        {
            "deviceInfo": {"devEui": f"70b3d57e{n:08x}", "applicationId": "kill"},
            "fPort": 10,
            "fCnt": n,
            "data": "AQI=",
        }
    )


async def test_every_uplink_answered_2xx_is_at_the_broker_after_a_sigkill(
    broker: LocalBroker, pki: DevPki, subscribe: Callable[..., Any], tmp_path: Path
) -> None:
    subscriber = await subscribe(broker, "kill/+/uplink")
    config = tmp_path / "connection.json"
    document = connection_document(
        broker,
        pki.client("bridge"),
        poolSize=10,
        # Below the offered 500/s: a backlog builds in the buffer, which is what a SIGKILL takes with it.
        uplinkRatePerSec=300,
        uplinkQos=1,
        deliveryAck="published",
        uplinkTopicPattern="kill/{DevEUI}/uplink",
        lns=[{"kind": "chirpstack", "ingressToken": CHIRPSTACK_TOKEN, "apiUrl": "https://cs.example.com/api"}],
    )
    config.write_text(orjson.dumps(document).decode())
    port = free_port()
    env = {**os.environ, "BRIDGE_STATE_DIR": str(tmp_path / "state"), "BRIDGE_TASK_ID": "kill"}
    env["BRIDGE_EMF_INTERVAL_SECS"] = "0"
    with (tmp_path / "bridge.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge_container", "--config", str(config), "--port", str(port),
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    answered: list[int] = []
    refused: list[int] = []
    try:
        await asyncio.to_thread(wait_for_port, port, timeout_secs=15)
        headers = {"Content-Type": "application/json", "Authorization": CHIRPSTACK_TOKEN}
        limits = httpx.Limits(max_connections=SENDERS)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, limits=limits) as http:
            for _ in range(200):
                if (await http.get("/healthz")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            start = time.monotonic()

            async def sender(first: int) -> None:
                # Each sender paces its own share: SENDERS together offer RATE_PER_SEC.
                n = first
                while True:
                    due = start + (n // SENDERS) * SENDERS / RATE_PER_SEC
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    try:
                        answer = await http.post("/uplinks/chirpstack", content=chirpstack_up(n), timeout=15.0)
                    except httpx.TransportError:
                        return  # the bridge is gone: this request got no answer, the LNS would retry it
                    (answered if answer.status_code == 202 else refused).append(n)
                    n += SENDERS

            senders = [asyncio.create_task(sender(first)) for first in range(SENDERS)]
            await asyncio.sleep(KILL_AFTER_SECS)
            process.send_signal(signal.SIGKILL)
            await asyncio.wait_for(asyncio.gather(*senders), 20.0)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    assert len(answered) >= MIN_ANSWERED  # the load was real
    assert refused == []
    received = await subscriber.wait_for(len(answered), timeout_secs=5.0)
    at_broker = {message.topic for message in received}
    missing = [n for n in answered if f"kill/70B3D57E{n:08X}/uplink" not in at_broker]
    assert missing == []
