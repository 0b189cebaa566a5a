"""Persistent sessions: which pool slots keep theirs, and which clients hold the downlink subscription."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge_container.mqtt.port import ClientCallbacks, InboundMessage, session_expiry_secs
from bridge_container.mqtt.subscriptions import Subscriptions
from bridge_container.states import ConnectionState
from bridge_domain.connection import ConnectionConfiguration
from bridge_domain.quotas import DEFAULT_PERSISTENT_SESSION_EXPIRY_SECS, MAX_PERSISTENT_SESSION_EXPIRY_SECS
from tests.unit.bridge.fakes import FakeClient


def configuration(**overrides: Any) -> ConnectionConfiguration:
    document: dict[str, Any] = {
        "deviceType": "sensor",
        "region": "eu-central-1",
        "accountPrefix": "a2plmnutiyt-ats",
        "createCertificate": True,
        "poolSize": 10,
        "downlinkRatePerSec": 100,
    }
    document.update(overrides)
    return ConnectionConfiguration.model_validate(document)


def test_only_the_downlink_subscribers_keep_their_sessions() -> None:
    config = configuration()
    assert list(config.budget.subscriber_slots) == [8, 9]  # 100 downlinks/s: two subscribers of 50/s
    expiries = [session_expiry_secs(config, slot) for slot in range(10)]
    assert expiries == [0] * 8 + [DEFAULT_PERSISTENT_SESSION_EXPIRY_SECS] * 2


def test_the_session_expiry_is_configurable_and_zero_means_clean_sessions() -> None:
    assert session_expiry_secs(configuration(downlinkSessionExpirySecs=600), 9) == 600
    assert session_expiry_secs(configuration(downlinkSessionExpirySecs=0), 9) == 0
    assert session_expiry_secs(configuration(downlinkEnabled=False), 9) == 0


@pytest.mark.parametrize("value", [-1, MAX_PERSISTENT_SESSION_EXPIRY_SECS + 1])
def test_a_session_expiry_beyond_aws_persistent_session_limit_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match="downlinkSessionExpirySecs"):
        configuration(downlinkSessionExpirySecs=value)


def _noop_callbacks() -> ClientCallbacks:
    return ClientCallbacks(on_state=lambda _client, _state: None, on_message=lambda _message: None)


async def _handler(_message: InboundMessage) -> None:
    return None


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_subscription_waits_for_a_session_keeper_instead_of_moving_to_a_clean_client() -> None:
    clean = FakeClient("bridge-0", _noop_callbacks())
    keeper = FakeClient("bridge-1", _noop_callbacks(), keeps_session=True)
    clients = [clean, keeper]
    subscriptions = Subscriptions("c", lambda: [c for c in clients if c.state is ConnectionState.OPENED])
    subscriptions.add("$share/g/tpx/things/+/downlink", _handler)
    for client in clients:
        client.move_to(ConnectionState.OPENED)
        subscriptions.on_client_state(client, ConnectionState.OPENED)
    await _settle()
    assert keeper.subscriptions == ["$share/g/tpx/things/+/downlink"]
    assert clean.subscriptions == []

    keeper.move_to(ConnectionState.CLOSED)
    subscriptions.on_client_state(keeper, ConnectionState.CLOSED)
    await _settle()
    assert clean.subscriptions == []  # the broker queues for the keeper's session meanwhile
    assert subscriptions.holders == []

    keeper.move_to(ConnectionState.OPENED)
    subscriptions.on_client_state(keeper, ConnectionState.OPENED)
    await _settle()
    assert keeper.subscriptions == ["$share/g/tpx/things/+/downlink"] * 2
    assert subscriptions.holders == [keeper]


async def test_without_session_keepers_the_subscription_moves_to_another_open_client() -> None:
    first, second = FakeClient("bridge-0", _noop_callbacks()), FakeClient("bridge-1", _noop_callbacks())
    clients = [first, second]
    subscriptions = Subscriptions("c", lambda: [c for c in clients if c.state is ConnectionState.OPENED])
    subscriptions.add("tpx/things/+/downlink", _handler)
    for client in clients:
        client.move_to(ConnectionState.OPENED)
        subscriptions.on_client_state(client, ConnectionState.OPENED)
    await _settle()
    assert second.subscriptions == ["tpx/things/+/downlink"]
    second.move_to(ConnectionState.CLOSED)
    subscriptions.on_client_state(second, ConnectionState.CLOSED)
    await _settle()
    assert first.subscriptions == ["tpx/things/+/downlink"]


async def test_a_message_no_handler_takes_is_acknowledged() -> None:
    acknowledged: list[str] = []
    subscriptions = Subscriptions("c", list)
    subscriptions.add("tpx/things/+/downlink", _handler)
    subscriptions.on_message(InboundMessage("other/topic", b"{}", acknowledge=lambda: acknowledged.append("x")))
    assert acknowledged == ["x"]


async def test_messages_of_a_resumed_session_that_arrive_before_the_handler_wait_for_it() -> None:
    handled: list[str] = []

    async def handler(message: InboundMessage) -> None:
        handled.append(message.topic)

    subscriptions = Subscriptions("c", list)
    subscriptions.on_message(InboundMessage("tpx/things/70B3D57ED0000001/downlink", b"{}"))
    subscriptions.add("tpx/things/+/downlink", handler)
    await _settle()
    assert handled == ["tpx/things/70B3D57ED0000001/downlink"]
