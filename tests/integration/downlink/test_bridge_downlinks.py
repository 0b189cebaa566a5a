"""Downlinks end to end: application → mosquitto (shared subscription) → bridge pool → local network server."""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import unquote

import pytest

from bridge_container.downlink.service import DownlinkSettings
from devtools.broker import LocalBroker
from devtools.local_lns import Answer, LocalLns
from devtools.pki import CertPair, DevPki
from tests.integration.downlink.conftest import (
    AS_KEY,
    FAST_RETRY,
    FAST_SETTINGS,
    WINDOW_SLACK_SECS,
    Application,
    configuration,
    max_in_window,
    running_bridge,
    until_subscribed,
    wait_until,
)

pytestmark = pytest.mark.integration

DEV_EUI = "70B3D57ED0000001"
# An application's one connection has 100 publishes a second to IoT Core, in and out together; the test's receives
# each downlink's feedback too, so it sends at most half of that.
APPLICATION_RATE_PER_SEC = 45


@pytest.fixture(scope="module")
def client_cert(pki: DevPki) -> CertPair:
    return pki.client("downlink-bridge")


async def test_downlinks_reach_the_network_server_with_devEUI_port_and_payload(
    broker: LocalBroker, client_cert: CertPair, lns: LocalLns
) -> None:
    config = configuration(broker, client_cert, lns)
    async with running_bridge(config, "task1") as bridge, Application(config) as app:
        await until_subscribed(app, bridge)
        probes = len(lns.requests)
        await app.send(DEV_EUI.lower(), {"payload_hex": "CAFE", "correlationId": "order-1"})
        await app.send(DEV_EUI, {"DevEUI_downlink": {"FPort": "12", "payload_hex": "0102", "Confirmed": "1"}})
        [(first_status, first), (second_status, _)] = await app.feedback(2)
        requests = lns.wait_for(probes + 2)[probes:]
    queries = sorted((request.query for request in requests), key=lambda query: query["Payload"])
    assert [(q["DevEUI"], q["FPort"], q["Payload"], q.get("Confirmed")) for q in queries] == [
        (DEV_EUI, "12", "0102", "1"),
        (DEV_EUI, "9", "cafe", None),  # FPort from the connection's downlinkPort
    ]
    for request in requests:
        signed, _, token = request.raw_query.partition("&Token=")
        assert token == hashlib.sha256((unquote(signed) + AS_KEY).encode()).hexdigest()
    assert (first_status, second_status) == ("queued", "queued")
    queued = first if first.get("correlationId") == "order-1" else _
    assert (queued["DevEUI"], queued["correlationId"], queued["lns"]) == (DEV_EUI, "order-1", "thingpark")
    assert bridge.sample("bridge_downlinks_sent_total", lns="thingpark") >= 2


async def test_two_bridges_on_one_shared_subscription_deliver_each_downlink_once(
    broker: LocalBroker, client_cert: CertPair, lns: LocalLns
) -> None:
    count = 200
    config = configuration(broker, client_cert, lns)
    async with (
        running_bridge(config, "task1") as first,
        running_bridge(config, "task2") as second,
        Application(config) as app,
    ):
        await until_subscribed(app, first, second)
        probes = len(lns.requests)
        started = asyncio.get_running_loop().time()
        for index in range(count):
            await asyncio.sleep(
                max(0.0, started + index / APPLICATION_RATE_PER_SEC - asyncio.get_running_loop().time())
            )
            await app.send(f"70B3D57ED{index:07X}", {"payload_hex": f"{index:04x}", "correlationId": f"n{index}"})
        requests = await asyncio.to_thread(lns.wait_for, probes + count, 30.0)
        await asyncio.sleep(0.5)  # a duplicate would arrive within this
        payloads = [request.query["Payload"] for request in lns.requests[probes:]]
        handled = [bridge.sample("bridge_downlinks_sent_total", lns="thingpark") for bridge in (first, second)]
    assert len(requests) >= probes + count
    assert sorted(payloads) == sorted(f"{index:04x}" for index in range(count))
    assert all(share > 0 for share in handled)  # both tasks took part


async def test_the_rate_holds_at_the_network_server(broker: LocalBroker, client_cert: CertPair, lns: LocalLns) -> None:
    rate_per_sec = 20
    config = configuration(broker, client_cert, lns, downlinkRatePerSec=rate_per_sec)
    async with running_bridge(config, "task1") as bridge, Application(config) as app:
        await until_subscribed(app, bridge)
        probes = len(lns.requests)
        for index in range(2 * rate_per_sec + 10):
            await app.send(DEV_EUI, {"payload_hex": f"{index:02x}"})
        requests = (await asyncio.to_thread(lns.wait_for, probes + 2 * rate_per_sec + 10, 10.0))[probes:]
    assert max_in_window(requests, 1.0 - WINDOW_SLACK_SECS) <= rate_per_sec
    # One device: its downlinks reach the network server in the order they were published.
    assert [request.query["Payload"] for request in requests] == [f"{index:02x}" for index in range(50)]


async def test_a_network_server_500_is_retried_then_reported_failed(
    broker: LocalBroker, client_cert: CertPair, lns: LocalLns
) -> None:
    config = configuration(broker, client_cert, lns)
    async with running_bridge(config, "task1") as bridge, Application(config) as app:
        await until_subscribed(app, bridge)
        lns.respond_with(lambda _request: Answer(500, b"internal error"))
        probes = len(lns.requests)
        await app.send(DEV_EUI, {"payload_hex": "01", "correlationId": "will-fail"})
        [(status, document)] = await app.feedback(1)
    assert len(lns.requests) - probes == FAST_RETRY.max_attempts
    assert (status, document["reason"], document["correlationId"]) == ("failed", "lns_unavailable", "will-fail")
    assert "500" in document["detail"]
    assert bridge.sample("bridge_downlinks_failed_total", reason="lns_unavailable") == 1


async def test_a_network_server_400_is_reported_failed_without_retry(
    broker: LocalBroker, client_cert: CertPair, lns: LocalLns
) -> None:
    config = configuration(broker, client_cert, lns)
    async with running_bridge(config, "task1") as bridge, Application(config) as app:
        await until_subscribed(app, bridge)
        lns.respond_with(lambda _request: Answer(400, b"bad FPort"))
        probes = len(lns.requests)
        await app.send(DEV_EUI, {"payload_hex": "01", "correlationId": "refused"})
        [(status, document)] = await app.feedback(1)
        await asyncio.sleep(0.2)  # a retry would arrive by now
    assert len(lns.requests) - probes == 1
    assert (status, document["reason"], document["correlationId"]) == ("failed", "lns_rejected", "refused")
    assert "bad FPort" in document["detail"]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"payload_hex": "0g", "correlationId": "bad-hex"}', b'{"payload_hex": "01", "FPort": 300}'],
)
async def test_a_malformed_downlink_is_reported_failed_and_never_sent(
    broker: LocalBroker, client_cert: CertPair, lns: LocalLns, body: bytes
) -> None:
    config = configuration(broker, client_cert, lns)
    async with running_bridge(config, "task1") as bridge, Application(config) as app:
        await until_subscribed(app, bridge)
        probes = len(lns.requests)
        await app.send(DEV_EUI, body)
        [(status, document)] = await app.feedback(1)
    assert len(lns.requests) == probes
    assert (status, document["DevEUI"], document["reason"]) == ("failed", DEV_EUI, "invalid_document")
    assert document.get("correlationId") == ((b"bad-hex" in body and "bad-hex") or None)


async def test_overflow_of_the_downlink_queue_is_reported_failed(
    broker: LocalBroker, client_cert: CertPair, lns: LocalLns
) -> None:
    config = configuration(broker, client_cert, lns, downlinkBufferSize=2)
    async with running_bridge(config, "task1") as bridge, Application(config) as app:
        await until_subscribed(app, bridge)
        lns.respond_with(lambda _request: Answer(200, delay_secs=0.5))
        for index in range(5):
            await app.send(DEV_EUI, {"payload_hex": "01", "correlationId": f"c{index}"})
        feedback = await app.feedback(5)
    statuses = sorted((document["correlationId"], status, document.get("reason")) for status, document in feedback)
    assert statuses == [
        ("c0", "queued", None),
        ("c1", "queued", None),
        ("c2", "failed", "queue_full"),
        ("c3", "failed", "queue_full"),
        ("c4", "failed", "queue_full"),
    ]
    assert bridge.sample("bridge_downlinks_failed_total", reason="queue_full") == 3


async def test_thingpark_sent_and_rejected_reports_are_published_as_feedback(
    broker: LocalBroker, client_cert: CertPair, lns: LocalLns
) -> None:
    config = configuration(broker, client_cert, lns)
    async with running_bridge(config, "task1") as bridge, Application(config) as app:
        await until_subscribed(app, bridge)
        await bridge.downlinks.report(
            "DevEUI_downlink_Sent",
            {"DevEUI_downlink_Sent": {"DevEUI": DEV_EUI, "DeliveryStatus": 1, "CorrelationID": "0011223344556677"}},
        )
        await bridge.downlinks.report(
            "DevEUI_downlink_Rejected", {"DevEUI_downlink_Rejected": {"DevEUI": DEV_EUI, "DeliveryFailedCause1": "D0"}}
        )
        feedback = dict(await app.feedback(2))
    assert feedback["sent"]["correlationId"] == "0011223344556677"
    assert feedback["failed"]["detail"] == "D0"


async def test_with_downlinks_disabled_nothing_is_subscribed(
    broker: LocalBroker, client_cert: CertPair, lns: LocalLns
) -> None:
    config = configuration(broker, client_cert, lns, downlinkEnabled=False)
    watcher = Application(config, "watcher", feedback=False)
    async with running_bridge(config, "task1") as bridge, Application(config) as app, watcher:
        await wait_until(lambda: bridge.pool.opened_clients == config.pool_size)
        await watcher.client.subscribe("tpx/things/+/downlink")
        for _ in range(5):
            await app.send(DEV_EUI, {"payload_hex": "01"})
        # The broker delivered all 5 to a subscriber of the downlink filter: the bridge would have had them too.
        await wait_until(lambda: watcher.messages.qsize() == 5)
        assert bridge.pool.subscriptions.holders == []
        assert app.messages.empty()  # no feedback
    assert lns.requests == []
    assert bridge.sample("bridge_downlinks_received_total") == 0
    assert bridge.downlinks.reports is None


async def test_stopping_reports_downlinks_still_waiting_as_failed(
    broker: LocalBroker, client_cert: CertPair, lns: LocalLns
) -> None:
    config = configuration(broker, client_cert, lns, downlinkRatePerSec=1)
    settings = DownlinkSettings(http=FAST_SETTINGS.http, drain_deadline_secs=0.2)
    async with Application(config) as app:
        async with running_bridge(config, "task1", settings) as bridge:
            await until_subscribed(app, bridge)
            await asyncio.sleep(1.0)  # the probe used this second's grant
            for index in range(3):
                await app.send(DEV_EUI, {"payload_hex": "01", "correlationId": f"late{index}"})
            await wait_until(lambda: bridge.sample("bridge_downlinks_received_total") >= 4)
        feedback = await app.feedback(3)
    outcomes = sorted((document["correlationId"], status, document.get("reason")) for status, document in feedback)
    assert [outcome for outcome in outcomes if outcome[1] == "failed"] != []
    assert all(reason == "shutdown" for _, status, reason in outcomes if status == "failed")


async def test_downlinks_at_90_per_second_all_reach_the_network_server(
    broker: LocalBroker, client_cert: CertPair, lns: LocalLns
) -> None:
    # Deliveries and feedback share each connection's 100 publishes/s: the subscription is spread over two clients
    # (50/s reserved on each) and the feedback goes out on whichever client has room.
    rate_per_sec, count = 90, 270
    config = configuration(broker, client_cert, lns, poolSize=4, uplinkRatePerSec=100, downlinkRatePerSec=100)
    assert config.budget.subscribers == 2
    async with running_bridge(config, "task1") as bridge, Application(config, feedback=False) as app:
        await until_subscribed(app, bridge)
        probes = len(lns.requests)
        started = asyncio.get_running_loop().time()
        for index in range(count):
            await asyncio.sleep(max(0.0, started + index / rate_per_sec - asyncio.get_running_loop().time()))
            await app.send(f"70B3D57ED{index:07X}", {"payload_hex": f"{index:04x}"})
        requests = await asyncio.to_thread(lns.wait_for, probes + count, 5.0)
    assert len(requests) - probes == count
