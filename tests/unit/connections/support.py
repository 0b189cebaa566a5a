"""Helpers shared by the Connections API tests: seed-shaped bodies and a runtime that records what it was told."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from bridge_container.states import ConnectionState, StateReport
from bridge_domain.connection import Connection
from devtools.pki import CertPair

DEFAULT_ACCOUNT = "123456789012"
SECRET_ACCESS_KEY = "lymHcNdzkkolnhZHnV5Q5YN/GTMFNiARtAj/7dz6758"
AS_KEY = "0123456789abcdef0123456789abcdef"


def certificate_arn(account: str = DEFAULT_ACCOUNT, region: str = "eu-central-1", fill: str = "ab") -> str:
    return f"arn:aws:iot:{region}:{account}:cert/{fill * 32}"


def seed_body(
    cert: CertPair,
    *,
    account: str = DEFAULT_ACCOUNT,
    region: str = "eu-central-1",
    name: str = "Actility AWS Connection",
) -> dict[str, Any]:
    """The seed's POST /connections example, with a real certificate pair and an AS key."""
    return {
        "connectorId": "actility-aws-iot",
        "name": name,
        "configuration": {
            "description": "AWS Europe Datacenter",
            "uplinkTopicPattern": "tpx/things/{DevEUI}/uplink",
            "downlinkTopicPattern": "tpx/things/{DevEUI}/downlink",
            "deviceType": "actilitytestsensor",
            "region": region,
            "accountPrefix": "a2plmnutiyt-ats",
            "secretAccessKey": SECRET_ACCESS_KEY,
            "accessKeyId": "AKIFAQFMTO34B3XZGHYA",
            "certificateId": certificate_arn(account, region),
            "certificate": cert.cert_pem,
            "privateKey": cert.key_pem,
            "lns": [{"kind": "thingpark", "asKey": AS_KEY}],
        },
    }


def wss_body(access_key_id: str, secret: str, *, region: str = "eu-west-1", name: str = "WSS") -> dict[str, Any]:
    """A WSS connection authenticated by access keys: its account comes from STS."""
    return {
        "connectorId": "actility-aws-iot",
        "name": name,
        "configuration": {
            "deviceType": "sensor",
            "region": region,
            "accountPrefix": "a2plmnutiyt-ats",
            "protocol": "WSS",
            "accessKeyId": access_key_id,
            "secretAccessKey": secret,
        },
    }


@dataclass
class FakeRuntimes:
    """Stands in for BridgeService: records each call and reports a state per connection."""

    running: dict[str, Connection] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    state: ConnectionState = ConnectionState.OPENED
    fail_next: bool = False
    apply_delay_secs: float = 0.0

    async def _maybe_fail(self) -> None:
        if self.apply_delay_secs:
            await asyncio.sleep(self.apply_delay_secs)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("pool could not start")

    async def add_connection(self, connection_id: str, connection: Connection) -> None:
        self.calls.append(("add", connection_id))
        await self._maybe_fail()
        assert connection_id not in self.running, "added twice"
        self.running[connection_id] = connection

    async def replace_connection(self, connection_id: str, connection: Connection) -> None:
        self.calls.append(("replace", connection_id))
        await self._maybe_fail()
        assert connection_id in self.running, "replaced before added"
        self.running[connection_id] = connection

    async def remove_connection(self, connection_id: str) -> None:
        self.calls.append(("remove", connection_id))
        del self.running[connection_id]

    def connection_report(self, connection_id: str) -> StateReport:
        if connection_id not in self.running:
            raise KeyError(connection_id)
        return StateReport(self.state, None if self.state is ConnectionState.OPENED else "held by the test")
