"""The downlink path inside the whole bridge service: attached to each connection by its start and stop hooks."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from bridge_container.service import BridgeService
from bridge_container.settings import ServiceSettings
from bridge_domain.connection import Connection
from devtools.broker import LocalBroker
from devtools.local_lns import LocalLns
from devtools.pki import CertPair, DevPki
from devtools.ports import free_port
from tests.integration.downlink.conftest import AS_KEY, OPEN_TIMEOUT_SECS, Application, configuration

pytestmark = pytest.mark.integration

DEV_EUI = "70B3D57ED0000001"


def signed_report_query(report: dict[str, Any]) -> str:
    """The query ThingPark sends with a report, its Token over CustomerID DevEUI FPort FCntDn, query and AS key."""
    query = f"LrnDevEui={DEV_EUI}&LrnFPort=1&AS_ID=as.test&Time={datetime.now(UTC).isoformat(timespec='seconds')}"
    values = "".join(str(report.get(name, "")) for name in ("CustomerID", "DevEUI", "FPort", "FCntDn"))
    token = hashlib.sha256((values + query + AS_KEY).encode()).hexdigest()
    return f"{quote(query, safe='=&')}&Token={token}"


@pytest.fixture(scope="module")
def client_cert(pki: DevPki) -> CertPair:
    return pki.client("downlink-service")


@pytest.fixture
async def service_url(broker: LocalBroker, client_cert: CertPair, lns: LocalLns) -> AsyncIterator[str]:
    connection = Connection(
        connector_id="actility-aws-iot", name="svc", configuration=configuration(broker, client_cert, lns)
    )
    settings = ServiceSettings(task_id="svc", port=free_port(), emf_interval_secs=0, drain_deadline_secs=1.0)
    service = BridgeService(settings)
    running = asyncio.create_task(service.run(connection))
    url = f"http://127.0.0.1:{settings.port}"
    try:
        async with httpx.AsyncClient() as http, asyncio.timeout(OPEN_TIMEOUT_SECS):
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield url
    finally:
        service.request_shutdown()
        await asyncio.wait_for(running, 30)


async def test_a_connection_of_the_service_forwards_downlinks_and_publishes_thingpark_reports(
    service_url: str, broker: LocalBroker, client_cert: CertPair, lns: LocalLns
) -> None:
    config = configuration(broker, client_cert, lns)
    async with Application(config, task_id="svc-app") as app, httpx.AsyncClient() as http:
        async with asyncio.timeout(OPEN_TIMEOUT_SECS):
            while not lns.requests:  # the subscription is in place once a downlink gets through
                await app.send(DEV_EUI, {"payload_hex": "beef", "correlationId": "via-service"})
                await asyncio.sleep(0.3)
        [(status, queued), *_] = await app.feedback(1)
        sent = {"DevEUI": DEV_EUI, "FPort": 1, "FCntDn": 3, "DeliveryStatus": 1, "CorrelationID": "0011223344556677"}
        answer = await http.post(
            f"{service_url}/uplinks/thingpark?{signed_report_query(sent)}", json={"DevEUI_downlink_Sent": sent}
        )
        while True:  # skip the feedback of any extra probe downlinks
            [(sent_status, sent)] = await app.feedback(1)
            if sent_status == "sent":
                break
        metrics = (await http.get(f"{service_url}/metrics")).text
    assert (lns.requests[0].query["DevEUI"], lns.requests[0].query["Payload"]) == (DEV_EUI, "beef")
    assert (status, queued["correlationId"]) == ("queued", "via-service")
    assert answer.status_code == 202
    assert (sent["DevEUI"], sent["correlationId"]) == (DEV_EUI, "0011223344556677")
    assert 'bridge_downlinks_sent_total{connection="default",lns="thingpark"}' in metrics
