"""The stand-in holds real MQTT 5 clients to IoT Core's rules: each rule firing, counted, and what observers see."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from awscrt import mqtt5

from bridge_domain import quotas
from devtools.broker import LocalBroker
from devtools.iotcore.client import StandInClient
from tests.integration.iotcore.conftest import AwsClient, settled, wait_for
from tests.integration.uplink.conftest import Subscriber

pytestmark = pytest.mark.integration

LIMIT = quotas.PUBLISHES_PER_SEC_PER_CONNECTION


async def run_tool(*command: str, stdin: str | None = None) -> None:
    """A mosquitto command-line client, run to its end off the event loop."""
    await asyncio.to_thread(subprocess.run, command, input=stdin, text=True, check=True, timeout=10)


async def observe(broker: LocalBroker, topic_filter: str) -> Subscriber:
    """A subscriber on the plain observer port: sees what reached the broker, held to no rule."""
    subscriber = Subscriber(broker, topic_filter)
    await subscriber.start()
    return subscriber


async def test_a_burst_of_150_loses_exactly_the_excess_which_is_counted(
    stand_in_broker: LocalBroker, counters: StandInClient, aws_client: Callable[..., AwsClient]
) -> None:
    observer = await observe(stand_in_broker, "burst/#")
    try:
        client = aws_client("burst-client")
        client.burst([f"burst/{index}" for index in range(150)])
        violations = await settled(counters)
        seen = observer.snapshot()
    finally:
        observer.stop()
    assert violations.by_client == {"burst-client": {"publish_rate": 150 - LIMIT}}
    assert len(seen) == LIMIT
    assert [message.topic for message in seen] == [f"burst/{index}" for index in range(LIMIT)]
    windows = counters.windows()
    assert windows.max_1s_per_connection == 150  # offered, before discards
    assert windows.max_1s_aggregate == 150


async def test_inbound_and_outbound_publishes_share_the_connection_s_budget(
    stand_in_broker: LocalBroker, counters: StandInClient, aws_client: Callable[..., AwsClient]
) -> None:
    observer = await observe(stand_in_broker, "echo/#")
    try:
        client = aws_client("echo-client")
        client.subscribe("echo/#")
        client.burst([f"echo/{index}" for index in range(60)])  # 60 in, and 60 back out to the same connection
        violations = await settled(counters)
        seen = observer.snapshot()
    finally:
        observer.stop()
    # 120 publishes on one connection (60 in, 60 back out) within a second: 100 pass, whichever way they went
    assert violations.by_client == {"echo-client": {"publish_rate": 20}}
    assert len(seen) + len(client.messages) == LIMIT
    assert len(client.messages) <= len(seen)


async def test_a_throttled_qos1_publish_gets_puback_quota_exceeded(
    counters: StandInClient, aws_client: Callable[..., AwsClient]
) -> None:
    client = aws_client("qos1-client")
    results = client.burst([f"qos1/{index}" for index in range(LIMIT + 5)], qos=1)
    codes = [result.puback.reason_code for result in results]
    assert (
        codes.count(mqtt5.PubackReasonCode.SUCCESS) + codes.count(mqtt5.PubackReasonCode.NO_MATCHING_SUBSCRIBERS)
        == LIMIT
    )
    assert codes[LIMIT:] == [mqtt5.PubackReasonCode.QUOTA_EXCEEDED] * 5
    assert (await settled(counters, 0.1)).by_reason == {"publish_rate": 5}


async def test_deliveries_over_the_budget_are_discarded_and_the_broker_is_not_left_waiting(
    stand_in_broker: LocalBroker, counters: StandInClient, aws_client: Callable[..., AwsClient]
) -> None:
    client = aws_client("qos1-receiver")
    packet = mqtt5.SubscribePacket([mqtt5.Subscription("deliver/#", qos=mqtt5.QoS.AT_LEAST_ONCE)])
    client._client.subscribe(packet).result(10)
    lines = "\n".join(f"m{index}" for index in range(150)) + "\n"
    publish = ["mosquitto_pub", "-h", stand_in_broker.host, "-p", str(stand_in_broker.ports.plain), "-q", "1"]
    await run_tool(*publish, "-t", "deliver/burst", "-l", stdin=lines)
    violations = await settled(counters, 1.1)
    assert violations.by_client == {"qos1-receiver": {"publish_rate": 150 - LIMIT}}
    assert len(client.messages) == LIMIT
    await run_tool(*publish, "-t", "deliver/after", "-m", "later")
    assert wait_for(lambda: ("deliver/after", b"later") in client.messages)


@pytest.mark.parametrize(
    ("topic", "payload", "reason", "code"),
    [
        (
            "long/" + "x" * (quotas.MAX_TOPIC_BYTES - 4),
            b"{}",
            "topic_too_long",
            mqtt5.DisconnectReasonCode.TOPIC_NAME_INVALID,
        ),
        ("a/b/c/d/e/f/g/h/i", b"{}", "topic_too_deep", mqtt5.DisconnectReasonCode.TOPIC_NAME_INVALID),
        (
            "big/1",
            b"x" * (quotas.MAX_PAYLOAD_BYTES + 1),
            "payload_too_large",
            mqtt5.DisconnectReasonCode.PACKET_TOO_LARGE,
        ),
        ("$aws/things/t1/tunnels/notify", b"{}", "reserved_topic", mqtt5.DisconnectReasonCode.NOT_AUTHORIZED),
    ],
    ids=["topic-257-bytes", "8-slashes", "payload-over-128KiB", "reserved-topic"],
)
async def test_a_publish_aws_refuses_is_not_delivered_and_closes_the_connection(
    stand_in_broker: LocalBroker,
    counters: StandInClient,
    aws_client: Callable[..., AwsClient],
    topic: str,
    payload: bytes,
    reason: str,
    code: Any,
) -> None:
    observer = await observe(stand_in_broker, "#")
    try:
        client = aws_client(f"refused-{reason}")
        client.publish(topic, payload)
        assert wait_for(lambda: bool(client.disconnect_reasons))
        violations = await settled(counters, 0.2)
        seen = observer.snapshot()
    finally:
        observer.stop()
    # (awscrt may reconnect within the second, which IoT Core refuses too: connect_rate)
    assert violations.by_client[f"refused-{reason}"][reason] == 1
    assert set(violations.by_reason) <= {reason, "connect_rate"}
    assert client.disconnect_reasons[0] == code
    assert seen == []


async def test_reserved_topics_a_device_may_publish_to_pass(
    stand_in_broker: LocalBroker, counters: StandInClient, aws_client: Callable[..., AwsClient]
) -> None:
    observer = await observe(stand_in_broker, "$aws/things/+/shadow/update")
    try:
        aws_client("shadow-writer").burst(["$aws/things/sensor-1/shadow/update"])
        violations = await settled(counters)
        seen = observer.snapshot()
    finally:
        observer.stop()
    assert violations.total == 0
    assert [message.topic for message in seen] == ["$aws/things/sensor-1/shadow/update"]


async def test_basic_ingest_reaches_no_subscriber(
    stand_in_broker: LocalBroker, counters: StandInClient, aws_client: Callable[..., AwsClient]
) -> None:
    observer = await observe(stand_in_broker, "$aws/rules/#")
    wildcard = await observe(stand_in_broker, "#")
    try:
        client = aws_client("ingest-client")
        client.subscribe("$aws/rules/#", "sensors/#")
        [result] = client.burst(["$aws/rules/store_uplinks/sensors/1"], qos=1)
        violations = await settled(counters)
        seen = observer.snapshot() + wildcard.snapshot()
    finally:
        observer.stop()
        wildcard.stop()
    assert result.puback.reason_code == mqtt5.PubackReasonCode.SUCCESS
    assert violations.total == 0
    assert seen == []
    assert client.messages == []
    assert counters.report()["basic_ingest"] == {"store_uplinks": 1}


async def test_the_51st_subscription_is_refused_and_the_connection_closed(
    counters: StandInClient, aws_client: Callable[..., AwsClient]
) -> None:
    client = aws_client("many-subscriptions")
    for start in range(0, quotas.MAX_SUBSCRIPTIONS_PER_CONNECTION, 8):  # AWS takes at most 8 filters a SUBSCRIBE
        stop = min(start + 8, quotas.MAX_SUBSCRIPTIONS_PER_CONNECTION)
        client.subscribe(*(f"sub/{index}" for index in range(start, stop)))
    assert (await settled(counters, 0.1)).total == 0
    packet = mqtt5.SubscribePacket([mqtt5.Subscription("sub/50", qos=mqtt5.QoS.AT_MOST_ONCE)])
    future = client._client.subscribe(packet)
    assert wait_for(lambda: bool(client.disconnect_reasons))
    if future.done() and future.exception() is None:
        assert future.result().reason_codes == [mqtt5.SubackReasonCode.QUOTA_EXCEEDED]
    assert client.disconnect_reasons[0] == mqtt5.DisconnectReasonCode.QUOTA_EXCEEDED
    assert (await settled(counters, 0.1)).by_client == {"many-subscriptions": {"subscription_limit": 1}}


async def test_a_second_connect_of_a_client_id_within_a_second_is_refused(
    counters: StandInClient, aws_client: Callable[..., AwsClient]
) -> None:
    aws_client("hasty").stop()
    again = aws_client("hasty", wait=False)
    assert wait_for(lambda: bool(again.failures))
    assert again.failures[0] == mqtt5.ConnectReasonCode.CONNECTION_RATE_EXCEEDED
    assert (await settled(counters, 0.1)).by_client == {"hasty": {"connect_rate": 1}}
    assert again.connected.wait(5.0)  # its retry, a second later, is accepted


async def test_a_duplicate_client_id_disconnects_the_older_connection(
    counters: StandInClient, aws_client: Callable[..., AwsClient]
) -> None:
    older = aws_client("twin")
    await settled(counters, 1.1)  # past the connect rate of the client ID
    aws_client("twin", wait=False)
    assert wait_for(lambda: bool(older.disconnect_reasons))
    older.stop()
    assert older.disconnect_reasons[0] == mqtt5.DisconnectReasonCode.SESSION_TAKEN_OVER
    assert (await settled(counters, 0.1)).by_reason.get("duplicate_client_id", 0) >= 1


async def test_websocket_clients_are_held_to_the_same_rules(
    stand_in_broker: LocalBroker, counters: StandInClient, aws_client: Callable[..., AwsClient]
) -> None:
    observer = await observe(stand_in_broker, "wss/#")
    try:
        aws_client("wss-client", websocket=True).burst([f"wss/{index}" for index in range(150)])
        violations = await settled(counters)
        seen = observer.snapshot()
    finally:
        observer.stop()
    assert violations.by_client == {"wss-client": {"publish_rate": 150 - LIMIT}}
    assert len(seen) == LIMIT


@pytest.mark.parametrize("listener", ["tls_unenforced", "audit"])
async def test_the_unenforced_listeners_deliver_everything(
    stand_in_broker: LocalBroker, counters: StandInClient, aws_client: Callable[..., AwsClient], listener: str
) -> None:
    observer = await observe(stand_in_broker, "free/#")
    try:
        aws_client(f"free-{listener}", getattr(stand_in_broker.ports, listener)).burst(
            [f"free/{index}" for index in range(150)]
        )
        violations = await settled(counters)
        seen = observer.snapshot()
    finally:
        observer.stop()
    assert violations.total == 0
    assert len(seen) == 150
    audited = counters.report()["audited"]["by_reason"]
    assert audited == ({"publish_rate": 50} if listener == "audit" else {})


async def test_mqtt_311_clients_are_held_to_the_publish_rate(
    stand_in_broker: LocalBroker, counters: StandInClient, pki: Any
) -> None:
    cert = pki.client("stand-in-test")
    lines = "\n".join(f"m{index}" for index in range(150)) + "\n"
    await run_tool(
        "mosquitto_pub", "-V", "mqttv311", "-h", stand_in_broker.host, "-p", str(stand_in_broker.ports.tls),
        "--cafile", str(stand_in_broker.ca_file), "--cert", str(cert.cert_path), "--key", str(cert.key_path),
        "-i", "mqtt311-client", "-t", "v311/burst", "-l", stdin=lines,
    )  # fmt: skip
    assert (await settled(counters, 0.2)).by_client == {"mqtt311-client": {"publish_rate": 150 - LIMIT}}
