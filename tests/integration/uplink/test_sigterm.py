"""``python -m bridge_container``: SIGTERM stops intake (503), drains the buffer, and exits cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
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

EXIT_TIMEOUT_SECS = 20.0
UPLINKS = 40


async def test_sigterm_drains_the_buffer_then_exits(
    broker: LocalBroker, pki: DevPki, subscribe: Callable[..., Any], tmp_path: Path
) -> None:
    subscriber = await subscribe(broker, "drain/+/uplink")
    config = tmp_path / "connection.json"
    document = connection_document(
        broker, pki.client("bridge"), poolSize=1, uplinkRatePerSec=20, uplinkTopicPattern="drain/{DevEUI}/uplink"
    )
    config.write_text(orjson.dumps(document).decode())
    port = free_port()
    env = {
        **os.environ,
        "BRIDGE_STATE_DIR": str(tmp_path / "state"),
        "BRIDGE_TASK_ID": "drain",
        "BRIDGE_DRAIN_DEADLINE_SECS": "10",
        "BRIDGE_EMF_INTERVAL_SECS": "0",
    }
    log_path = tmp_path / "bridge.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bridge_container",
            "--config",
            str(config),
            "--port",
            str(port),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
    try:
        await asyncio.to_thread(wait_for_port, port, timeout_secs=15)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Content-Type": "application/json"}
        ) as http:
            for _ in range(100):
                if (await http.get("/healthz")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            for n in range(UPLINKS):
                body = orjson.dumps({"DevEUI_uplink": {"DevEUI": f"70B3D57ED00001{n:02X}", "FCntUp": n}})
                assert (await http.post("/uplinks/thingpark", content=body)).status_code == 202
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            refused = await http.post("/uplinks/thingpark", content=body)
        exit_code = await asyncio.wait_for(process.wait(), EXIT_TIMEOUT_SECS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stderr = log_path.read_text()
    received = await subscriber.wait_for(UPLINKS, timeout_secs=2)
    assert refused.status_code == 503
    assert exit_code == 0, stderr[-2000:]
    assert len({message.topic for message in received}) == UPLINKS
    assert "shutdown requested" in stderr
