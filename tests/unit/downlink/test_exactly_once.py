"""A downlink delivered again is not sent twice; one whose validity ended is not sent; each is acknowledged when done.

The network server is a real local HTTP server (:class:`devtools.local_lns.LocalLns`); the pool is a recorder.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from bridge_container.downlink.dedup import DuplicateFilter
from bridge_container.downlink.documents import parse_downlink
from bridge_container.downlink.exceptions import DocumentError
from bridge_container.downlink.sender import HttpSettings, RetryPolicy
from bridge_container.downlink.service import DownlinkService, DownlinkSettings
from bridge_container.mqtt.port import InboundMessage
from bridge_domain.connection import ConnectionConfiguration
from bridge_domain.topics import TopicPattern
from devtools.local_lns import Answer, LocalLns

DEV_EUI = "70B3D57ED0000001"
TOPIC = f"tpx/things/{DEV_EUI}/downlink"
SETTINGS = DownlinkSettings(
    http=HttpSettings(read_timeout_secs=2.0, retry=RetryPolicy(max_attempts=1)), drain_deadline_secs=2.0
)


# --- the filter itself ------------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_identity_is_a_duplicate_while_in_flight_and_after_it_was_sent() -> None:
    seen = DuplicateFilter()
    assert seen.begin("message:a")
    assert not seen.begin("message:a")
    seen.finish("message:a", sent=True)
    assert not seen.begin("message:a")


def test_a_failed_identity_is_forgotten_so_the_application_may_send_it_again() -> None:
    seen = DuplicateFilter()
    assert seen.begin("message:a")
    seen.finish("message:a", sent=False)
    assert seen.begin("message:a")


def test_sent_identities_are_forgotten_after_the_window() -> None:
    clock = Clock()
    seen = DuplicateFilter(window_secs=60.0, clock=clock)
    seen.begin("message:a")
    seen.finish("message:a", sent=True)
    clock.now = 59.0
    assert not seen.begin("message:a")
    clock.now = 61.0
    assert seen.begin("message:a")


def test_the_filter_holds_at_most_its_capacity_oldest_forgotten_first() -> None:
    seen = DuplicateFilter(capacity=3)
    for name in "abcd":
        seen.begin(name)
        seen.finish(name, sent=True)
    assert len(seen) == 3
    assert seen.begin("a")  # the oldest went
    assert not seen.begin("d")


# --- through the downlink service -------------------------------------------------------------------------------
class Pool:
    """What the service needs of a pool: records feedback and keeps the subscription's handler."""

    def __init__(self) -> None:
        self.feedback: list[tuple[str, dict[str, Any]]] = []
        self.handler: Callable[[InboundMessage], Awaitable[None]] | None = None

    async def publish_control(self, topic: str, payload: bytes) -> None:
        self.feedback.append((topic.rsplit("/", 1)[1], orjson.loads(payload)))

    def add_subscription(self, topic_filter: str, handler: Callable[[InboundMessage], Awaitable[None]]) -> None:
        self.handler = handler

    async def deliver(self, document: dict[str, Any], **message: Any) -> list[str]:
        """Hand one message to the service; returns the list its acknowledgement is recorded into."""
        acknowledged: list[str] = []
        assert self.handler is not None
        inbound = InboundMessage(
            TOPIC, orjson.dumps(document), acknowledge=lambda: acknowledged.append("ack"), **message
        )
        await self.handler(inbound)
        return acknowledged

    async def wait_feedback(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        async with asyncio.timeout(5):
            while len(self.feedback) < count:  # noqa: ASYNC110 - the publisher signals nothing
                await asyncio.sleep(0.01)
        return self.feedback


@pytest.fixture
def lns() -> Iterator[LocalLns]:
    with LocalLns() as server:
        yield server


def configuration(lns: LocalLns) -> ConnectionConfiguration:
    return ConnectionConfiguration.model_validate(
        {
            "deviceType": "sensor",
            "region": "eu-central-1",
            "accountPrefix": "a2plmnutiyt-ats",
            "createCertificate": True,
            "lns": [
                {"kind": "thingpark", "asId": "as.test", "downlinkUrl": f"{lns.url}/thingpark/lrc/rest/downlink"},
                {"kind": "chirpstack", "apiUrl": f"{lns.url}/api", "apiToken": "token", "ingressToken": "i" * 32},
            ],
        }
    )


@pytest.fixture
async def service(lns: LocalLns) -> AsyncIterator[tuple[DownlinkService, Pool]]:
    pool = Pool()
    async with DownlinkService("c1", configuration(lns), pool, CollectorRegistry(), SETTINGS) as running:
        yield running, pool


def count(service: DownlinkService, name: str) -> float:
    """The value of the connection's counter ``name`` (an attribute of the metric families)."""
    counter = getattr(service.metrics.families, name)
    samples = counter.collect()[0].samples
    return float(next(s.value for s in samples if s.name.endswith("_total") and s.labels == {"connection": "c1"}))


async def test_the_same_message_id_reaches_the_network_server_once(
    service: tuple[DownlinkService, Pool], lns: LocalLns
) -> None:
    downlinks, pool = service
    first = await pool.deliver({"payload_hex": "01"}, user_properties=(("messageId", "m-1"),))
    second = await pool.deliver({"payload_hex": "01"}, user_properties=(("messageId", "m-1"),))
    await pool.wait_feedback(1)
    await asyncio.sleep(0.2)
    assert len(lns.requests) == 1
    assert first == second == ["ack"]
    assert count(downlinks, "duplicates") == 1


async def test_a_thingpark_correlation_id_seen_before_is_not_sent_again(
    service: tuple[DownlinkService, Pool], lns: LocalLns
) -> None:
    document = {"DevEUI_downlink": {"payload_hex": "01", "CorrelationID": "4434704901C7450B"}}
    await pool_deliver_twice(service[1], document)
    assert [request.query["CorrelationID"] for request in lns.requests] == ["4434704901C7450B"]


async def test_a_chirpstack_queue_item_id_seen_before_is_not_sent_again(
    service: tuple[DownlinkService, Pool], lns: LocalLns
) -> None:
    item_id = str(uuid.uuid4())
    await pool_deliver_twice(service[1], {"payload_hex": "01", "lns": "chirpstack", "queueItemId": item_id})
    assert [orjson.loads(request.body)["queueItem"]["id"] for request in lns.requests] == [item_id]


async def pool_deliver_twice(pool: Pool, document: dict[str, Any]) -> None:
    await pool.deliver(document)
    await pool.wait_feedback(1)
    await pool.deliver(document)
    await asyncio.sleep(0.2)
    assert [status for status, _ in pool.feedback] == ["queued"]


async def test_downlinks_without_an_identity_are_all_sent(service: tuple[DownlinkService, Pool], lns: LocalLns) -> None:
    _, pool = service
    await pool.deliver({"payload_hex": "01", "correlationId": "same"})
    await pool.deliver({"payload_hex": "01", "correlationId": "same"})
    assert len(await asyncio.to_thread(lns.wait_for, 2)) == 2


async def test_a_downlink_the_network_server_refused_may_be_sent_again(
    service: tuple[DownlinkService, Pool], lns: LocalLns
) -> None:
    _, pool = service
    lns.respond_with(lambda _request: Answer(status=400))
    await pool.deliver({"payload_hex": "01"}, user_properties=(("messageId", "m-2"),))
    await pool.wait_feedback(1)
    lns.respond_with(lambda _request: Answer())
    await pool.deliver({"payload_hex": "01"}, user_properties=(("messageId", "m-2"),))
    await pool.wait_feedback(2)
    assert [status for status, _ in pool.feedback] == ["failed", "queued"]
    assert len(lns.requests) == 2


async def test_the_acknowledgement_waits_for_the_network_servers_answer(
    service: tuple[DownlinkService, Pool], lns: LocalLns
) -> None:
    _, pool = service
    lns.respond_with(lambda _request: Answer(delay_secs=0.5))
    acknowledged = await pool.deliver({"payload_hex": "01"})
    await asyncio.to_thread(lns.wait_for, 1)
    assert acknowledged == []  # the network server has not answered yet
    await pool.wait_feedback(1)
    assert acknowledged == ["ack"]


async def test_an_expired_mqtt_message_is_not_sent_and_says_so(
    service: tuple[DownlinkService, Pool], lns: LocalLns
) -> None:
    downlinks, pool = service
    acknowledged = await pool.deliver({"payload_hex": "01", "correlationId": "late"}, expiry_secs=0)
    (status, document), *_ = await pool.wait_feedback(1)
    assert (status, document["correlationId"]) == ("expired", "late")
    assert acknowledged == ["ack"]
    assert lns.requests == []
    assert count(downlinks, "expired") == 1


async def test_a_thingpark_validity_time_in_the_past_is_not_sent(
    service: tuple[DownlinkService, Pool], lns: LocalLns
) -> None:
    _, pool = service
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat(timespec="milliseconds")
    await pool.deliver({"DevEUI_downlink": {"payload_hex": "01", "ValidityTime": past}})
    assert [status for status, _ in await pool.wait_feedback(1)] == ["expired"]
    assert lns.requests == []


async def test_a_downlink_whose_validity_ends_while_it_waits_its_turn_expires(
    service: tuple[DownlinkService, Pool], lns: LocalLns
) -> None:
    _, pool = service
    lns.respond_with(lambda _request: Answer(delay_secs=0.6))
    soon = (datetime.now(UTC) + timedelta(seconds=0.3)).isoformat()
    await pool.deliver({"payload_hex": "01", "correlationId": "first"})
    await pool.deliver({"payload_hex": "02", "correlationId": "second", "validUntil": soon})  # behind the first
    feedback = await pool.wait_feedback(2)
    assert sorted((status, document["correlationId"]) for status, document in feedback) == [
        ("expired", "second"),
        ("queued", "first"),
    ]
    assert len(lns.requests) == 1


def test_a_validity_without_utc_offset_is_refused_by_name() -> None:
    pattern = TopicPattern.parse("tpx/things/{DevEUI}/downlink")
    body = orjson.dumps({"DevEUI_downlink": {"payload_hex": "01", "ValidityTime": "2026-12-02T20:00:00"}})
    with pytest.raises(DocumentError, match="ValidityTime"):
        parse_downlink(TOPIC, body, pattern=pattern, default_port=1)


@pytest.mark.parametrize("leave_unsent", [False, True])
async def test_downlinks_not_sent_at_stop_fail_or_are_left_for_the_broker(lns: LocalLns, leave_unsent: bool) -> None:
    pool = Pool()
    settings = DownlinkSettings(
        http=SETTINGS.http, drain_deadline_secs=0.1, leave_unsent_on_stop=leave_unsent, max_in_flight=1
    )
    lns.respond_with(lambda _request: Answer(delay_secs=0.4))
    async with DownlinkService("c1", configuration(lns), pool, CollectorRegistry(), settings):
        acknowledgements = [await pool.deliver({"payload_hex": f"0{index}"}) for index in range(3)]
        await asyncio.to_thread(lns.wait_for, 1)
    await asyncio.sleep(0.1)
    if leave_unsent:  # no feedback, no PUBACK: the broker delivers them again to the session
        assert acknowledgements == [[], [], []]
        assert pool.feedback == []
    else:
        assert acknowledgements == [["ack"], ["ack"], ["ack"]]
        assert [(status, document["reason"]) for status, document in pool.feedback] == [("failed", "shutdown")] * 3
