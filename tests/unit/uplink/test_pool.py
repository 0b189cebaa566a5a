"""The pool: bounded buffer, sharing among OPENED clients, accounting, draining and subscriptions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from bridge_container.exceptions import PoolClosedError, PublishError
from bridge_container.metrics import UplinkMetrics, new_registry
from bridge_container.mqtt.port import InboundMessage, UserProperties
from bridge_container.mqtt.subscriptions import topic_matches
from bridge_container.states import ConnectionState
from bridge_container.uplink import pool as pool_module
from bridge_container.uplink.limits import MAX_PUBLISH_BYTES, RateLimits
from bridge_container.uplink.pool import MqttPool, PoolSettings
from bridge_domain.budget import LIMIT_WINDOW_SECS, plan_budget
from tests.metrics import sample_value
from tests.unit.bridge.fakes import FakeClient, FakeFactory

CONNECTION = "default"


class FakeClock:
    """The pool's monotonic clock, moved by the test: the limiter grants only what the set time allows."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sent(start: int, stop: int, prefix: str = "t") -> list[tuple[str, bytes]]:
    """The uplinks ``<prefix>/<start>`` .. ``<prefix>/<stop - 1>`` as the tests submit them (``up/`` carry ``u``)."""
    payload = b"u" if prefix == "up" else b"x"
    return [(f"{prefix}/{index}", payload) for index in range(start, stop)]


def batch(uplinks: list[tuple[str, bytes]]) -> list[tuple[str, bytes, UserProperties]]:
    """``uplinks`` as ``submit_many`` takes them, without user properties of their own."""
    return [(topic, payload, ()) for topic, payload in uplinks]


async def settle(condition: Callable[[], bool], timeout_secs: float = 2.0) -> None:
    """Let the loop run until ``condition`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout_secs
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


def make_pool(
    factory: FakeFactory, *, size: int = 3, buffer_size: int = 100, limits: RateLimits | None = None
) -> tuple[MqttPool, CollectorRegistry]:
    registry = new_registry()
    settings = PoolSettings(size=size, buffer_size=buffer_size, limits=limits or RateLimits.lifted())
    return MqttPool(CONNECTION, settings, factory, UplinkMetrics(registry)), registry


@pytest.fixture
def factory() -> FakeFactory:
    return FakeFactory()


async def test_submit_refuses_when_the_buffer_is_full(factory: FakeFactory) -> None:
    factory.start_states = dict.fromkeys(range(3), ConnectionState.OPENING)
    pool, _ = make_pool(factory, buffer_size=2)
    async with pool:
        assert pool.submit("t/1", b"a")
        assert pool.submit("t/2", b"b")
        assert not pool.submit("t/3", b"c")
        assert pool.depth == 2


async def test_uplinks_go_only_to_opened_clients_and_are_shared_among_them(factory: FakeFactory) -> None:
    factory.start_states = {1: ConnectionState.UNREACHABLE}
    pool, _ = make_pool(factory)
    async with pool:
        for index in range(30):
            assert pool.submit(f"t/{index}", b"x")
        await settle(lambda: pool.depth == 0 and pool.in_flight == 0)
    # Round-robin over the OPENED slots 0 and 2, in order; the unreachable client is asked for nothing.
    assert factory.clients[0].published == [(f"t/{index}", b"x") for index in range(0, 30, 2)]
    assert factory.clients[1].published == []
    assert factory.clients[2].published == [(f"t/{index}", b"x") for index in range(1, 30, 2)]


async def test_buffered_uplinks_wait_for_a_client_to_open(factory: FakeFactory) -> None:
    factory.start_states = dict.fromkeys(range(3), ConnectionState.OPENING)
    pool, registry = make_pool(factory)
    async with pool:
        pool.submit("t/1", b"x")
        assert pool.depth == 1
        factory.clients[2].move_to(ConnectionState.OPENED)
        await settle(lambda: pool.depth == 0 and pool.in_flight == 0)
    # Handed to a client that was not OPENED, it would have failed and been counted dropped instead.
    assert [client.published for client in factory.clients] == [[], [], [("t/1", b"x")]]
    assert sample_value(registry, "bridge_uplinks_published_total", {"connection": CONNECTION}) == 1
    assert not sample_value(
        registry, "bridge_uplinks_dropped_total", {"connection": CONNECTION, "reason": "publish_failed"}
    )


async def test_every_accepted_uplink_is_published_or_counted_dropped(factory: FakeFactory) -> None:
    pool, registry = make_pool(factory, size=2)
    async with pool:
        await settle(lambda: pool.opened_clients == 2)
        factory.clients[0].fail_publishes = True
        for index in range(20):
            pool.submit(f"t/{index}", b"x")
        await settle(lambda: pool.depth == 0 and pool.in_flight == 0)
    published = sample_value(registry, "bridge_uplinks_published_total", {"connection": CONNECTION})
    dropped = sample_value(
        registry, "bridge_uplinks_dropped_total", {"connection": CONNECTION, "reason": "publish_failed"}
    )
    assert published == len(factory.clients[1].published) == 10
    assert dropped == 10
    assert sample_value(registry, "bridge_uplink_publish_latency_seconds_count", {"connection": CONNECTION}) == 10


async def test_unconfirmed_publishes_are_bounded_and_the_rest_wait_in_the_buffer(factory: FakeFactory) -> None:
    registry = new_registry()
    settings = PoolSettings(size=1, buffer_size=100, limits=RateLimits.lifted(), max_in_flight=3)
    pool = MqttPool(CONNECTION, settings, factory, UplinkMetrics(registry))
    async with pool:
        factory.clients[0].hold_completions = True
        for index in range(10):
            assert pool.submit(f"t/{index}", b"x")
        # A control publish is not bounded by the unconfirmed ones: once the dispatcher has written it, it has also
        # looked at the buffer, and found no room for an uplink.
        control = asyncio.create_task(pool.publish_control("fb/sent", b"{}"))
        await settle(lambda: ("fb/sent", b"{}") in factory.clients[0].published)
        assert (factory.clients[0].published, pool.depth) == ([*sent(0, 3), ("fb/sent", b"{}")], 7)
        factory.clients[0].release()  # 3 uplinks confirmed: room for the next 3
        await settle(lambda: len(factory.clients[0].published) == 7)
        assert pool.depth == 4
        while pool.depth:
            factory.clients[0].release()
            await asyncio.sleep(0.01)
        factory.clients[0].release()
        await settle(lambda: pool.in_flight == 0)
        await control
    assert [item for item in factory.clients[0].published if item[0] != "fb/sent"] == sent(0, 10)


async def test_stop_counts_uplinks_still_buffered_as_dropped(factory: FakeFactory) -> None:
    factory.start_states = dict.fromkeys(range(3), ConnectionState.CLOSED)
    pool, registry = make_pool(factory)
    async with pool:
        for index in range(5):
            pool.submit(f"t/{index}", b"x")
        assert await pool.drain(0.05) == 5
    assert sample_value(registry, "bridge_uplinks_dropped_total", {"connection": CONNECTION, "reason": "shutdown"}) == 5
    with pytest.raises(PoolClosedError, match=r"^connection default is stopped$"):
        pool.submit("t/late", b"x")


async def test_drain_waits_for_the_buffer_to_empty(factory: FakeFactory) -> None:
    limits = RateLimits(aggregate_per_sec=200.0, per_client_per_sec=100.0)
    pool, _ = make_pool(factory, size=2, limits=limits)
    async with pool:
        await settle(lambda: pool.opened_clients == 2)
        for index in range(40):
            pool.submit(f"t/{index}", b"x")
        left = await pool.drain(5.0)
    assert left == 0
    assert sum(len(client.published) for client in factory.clients) == 40


async def test_stop_keeping_the_buffer_hands_it_to_the_next_pool(factory: FakeFactory) -> None:
    factory.start_states = dict.fromkeys(range(3), ConnectionState.OPENING)
    first, _ = make_pool(factory)
    await first.start()
    first.submit("t/1", b"1")
    first.submit("t/2", b"2")
    kept = await first.stop(keep_buffer=True)
    assert [topic for topic, *_ in kept] == ["t/1", "t/2"]

    successor_factory = FakeFactory()
    successor, _ = make_pool(successor_factory)
    successor.submit("t/3", b"3")
    assert successor.adopt(kept) == 0
    async with successor:
        await settle(lambda: successor.depth == 0)
    published = [topic for client in successor_factory.clients for topic, _ in client.published]
    assert sorted(published) == ["t/1", "t/2", "t/3"]


async def test_a_subscription_is_held_on_one_client_and_moves_when_it_drops(factory: FakeFactory) -> None:
    received: list[InboundMessage] = []

    async def handler(message: InboundMessage) -> None:
        received.append(message)

    pool, _ = make_pool(factory)
    async with pool:
        pool.add_subscription("$share/g/tpx/things/+/downlink", handler)
        await settle(lambda: sum(len(client.subscriptions) for client in factory.clients) == 1)
        holder = next(client for client in factory.clients if client.subscriptions)
        holder.move_to(ConnectionState.CLOSED)
        await settle(lambda: sum(len(client.subscriptions) for client in factory.clients) == 2)
        holder.move_to(ConnectionState.OPENED)
        # Subscribing is serialised: once a filter added after the return is held, the return has been handled.
        pool.add_subscription("$share/g/control/+", _ignore)
        await settle(lambda: any("$share/g/control/+" in client.subscriptions for client in factory.clients))
        held = [topic for client in factory.clients for topic in client.subscriptions]
        assert held.count("$share/g/tpx/things/+/downlink") == 2  # no duplicate on return
        factory.clients[0].deliver("tpx/things/0000000000000001/downlink", b"{}")
        factory.clients[0].deliver("other/topic", b"{}")
        await settle(lambda: len(received) == 1)
    assert received[0].topic == "tpx/things/0000000000000001/downlink"


async def test_a_subscription_is_renewed_after_its_client_reconnects(factory: FakeFactory) -> None:
    async def handler(message: InboundMessage) -> None:
        return None

    pool, _ = make_pool(factory, size=1)
    async with pool:
        pool.add_subscription("a/+/b", handler)
        await settle(lambda: factory.clients[0].subscriptions == ["a/+/b"])
        factory.clients[0].move_to(ConnectionState.CLOSED)
        factory.clients[0].move_to(ConnectionState.OPENED)
        await settle(lambda: factory.clients[0].subscriptions == ["a/+/b", "a/+/b"])


async def test_control_publishes_go_before_buffered_uplinks(factory: FakeFactory) -> None:
    factory.start_states = dict.fromkeys(range(3), ConnectionState.CLOSED)
    pool, _ = make_pool(factory)
    async with pool:
        for index in range(3):
            assert pool.submit(f"up/{index}", b"u")
        control = asyncio.create_task(pool.publish_control("fb/sent", b"{}"))
        await asyncio.sleep(0.01)
        factory.clients[0].move_to(ConnectionState.OPENED)
        await asyncio.wait_for(control, 2.0)
        await settle(lambda: len(factory.clients[0].published) == 4)
    assert factory.clients[0].published[0] == ("fb/sent", b"{}")


async def test_control_publishes_wait_for_a_clients_grant_and_uplinks_do_not_take_it(factory: FakeFactory) -> None:
    limits = RateLimits(aggregate_per_sec=1000.0, per_client_per_sec=5.0, per_client_bytes_per_sec=None)
    pool, _ = make_pool(factory, size=1, limits=limits)
    async with pool:
        for index in range(20):
            assert pool.submit(f"up/{index}", b"u")
        await settle(lambda: len(factory.clients[0].published) == 5)  # the window is full of uplinks
        await asyncio.wait_for(pool.publish_control("fb/sent", b"{}"), 3.0)
    topics = [topic for topic, _ in factory.clients[0].published]
    assert topics[5] == "fb/sent"  # the first grant after the window went to the feedback, not to up/5


async def test_a_failed_control_publish_raises_with_the_failure(factory: FakeFactory) -> None:
    pool, _ = make_pool(factory, size=1)
    async with pool:
        factory.clients[0].fail_publishes = True
        with pytest.raises(
            PublishError, match=r"^connection default: publish on 'fb/sent' failed: AWS_IO_SOCKET_CLOSED$"
        ):
            await pool.publish_control("fb/sent", b"{}")


async def test_deliveries_take_from_the_receiving_clients_publish_limit(factory: FakeFactory) -> None:
    limits = RateLimits(aggregate_per_sec=1000.0, per_client_per_sec=10.0, per_client_bytes_per_sec=None)
    clock = FakeClock()
    pool = MqttPool(CONNECTION, PoolSettings(1, 100, limits), factory, UplinkMetrics(new_registry()), clock=clock)
    pool.add_subscription("$share/g/down/+", _ignore)
    async with pool:
        for index in range(7):
            factory.clients[0].deliver(f"down/{index}", b"d")
        for index in range(10):
            assert pool.submit(f"up/{index}", b"u")
        assert factory.clients[0].published == sent(0, 2, "up")  # the burst of 2, at once
        # Half a second on, the pace would allow 2 more: the window, holding 7 deliveries and 2 publishes, takes 1.
        clock.now = 0.5
        await settle(lambda: len(factory.clients[0].published) >= 3)
        assert factory.clients[0].published == sent(0, 3, "up")  # the clock stands still: no grant can follow
        clock.now = LIMIT_WINDOW_SECS  # the deliveries and the first publishes leave the window
        await settle(lambda: len(factory.clients[0].published) == 5)


async def test_a_shared_subscription_is_spread_over_the_budgets_subscribers(factory: FakeFactory) -> None:
    budget = plan_budget(pool_size=4, per_connection_per_sec=100, downlink_rate_per_sec=100)
    registry = new_registry()
    limits = RateLimits(aggregate_per_sec=1000.0, per_client_per_sec=100.0, per_client_bytes_per_sec=None)
    settings = PoolSettings(size=4, buffer_size=1000, limits=limits, budget=budget)
    pool = MqttPool(CONNECTION, settings, factory, UplinkMetrics(registry))
    pool.add_subscription("$share/g/down/+", _ignore)
    async with pool:
        await settle(lambda: sum(bool(client.subscriptions) for client in factory.clients) == 2)
        for index in range(400):
            assert pool.submit(f"up/{index}", b"u")
        await asyncio.sleep(0.5)
    holders = [slot for slot, client in enumerate(factory.clients) if client.subscriptions]
    assert holders == [2, 3]  # the highest slots
    counts = [len(client.published) for client in factory.clients]
    # Within the same half second the subscribers published at most their 50/s share, the others up to 100/s.
    assert all(counts[slot] <= 50 * 0.5 + 5 for slot in holders)
    assert all(counts[slot] > 50 * 0.5 + 5 for slot in (0, 1))


async def test_a_plain_filter_is_held_on_one_client_only(factory: FakeFactory) -> None:
    budget = plan_budget(pool_size=3, per_connection_per_sec=100, downlink_rate_per_sec=100)
    settings = PoolSettings(size=3, buffer_size=10, limits=RateLimits.lifted(), budget=budget)
    pool = MqttPool(CONNECTION, settings, factory, UplinkMetrics(new_registry()))
    pool.add_subscription("down/+", _ignore)
    async with pool:
        await settle(lambda: any(client.subscriptions for client in factory.clients))
        # Subscribing is serialised: once a filter added later is held, no further client took "down/+".
        pool.add_subscription("control/+", _ignore)
        await settle(lambda: any("control/+" in client.subscriptions for client in factory.clients))
    assert [client.subscriptions for client in factory.clients] == [[], [], ["down/+", "control/+"]]


async def _ignore(_message: InboundMessage) -> None:
    return None


async def test_control_publish_fails_when_no_client_opens(
    factory: FakeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "CONTROL_OPEN_TIMEOUT_SECS", 0.05)
    factory.start_states = dict.fromkeys(range(3), ConnectionState.AUTHENTICATION_FAILED)
    pool, _ = make_pool(factory)
    async with pool:
        assert pool.state is ConnectionState.AUTHENTICATION_FAILED
        with pytest.raises(PublishError):
            await pool.publish_control("fb/sent", b"{}")


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/#", "a/b/c", True),
        ("$share/group/a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/b", "a", False),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


# --- settings, hand-over, all-or-none and the refusals' words -----------------------------------------------------
@pytest.mark.parametrize(("size", "buffer_size", "max_in_flight"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_a_pool_needs_a_client_a_buffer_slot_and_one_publish_in_flight(
    size: int, buffer_size: int, max_in_flight: int
) -> None:
    with pytest.raises(ValueError, match=r"^pool size, buffer size and max in flight must be >= 1$"):
        PoolSettings(size, buffer_size, RateLimits.lifted(), max_in_flight=max_in_flight)
    assert PoolSettings(1, 1, RateLimits.lifted(), max_in_flight=1).max_in_flight == 1


async def test_adopted_uplinks_go_first_and_those_that_do_not_fit_are_counted_replaced(factory: FakeFactory) -> None:
    factory.start_states = dict.fromkeys(range(3), ConnectionState.OPENING)
    pool, registry = make_pool(factory, buffer_size=3)
    assert pool.submit("t/own", b"x")
    assert pool.adopt([("t/1", b"1", 0.0, (), None), ("t/2", b"2", 0.0, (), None), ("t/3", b"3", 0.0, (), None)]) == 1
    async with pool:
        factory.clients[0].move_to(ConnectionState.OPENED)
        await settle(lambda: pool.depth == 0)
    assert [topic for topic, _ in factory.clients[0].published] == ["t/1", "t/2", "t/own"]
    assert sample_value(registry, "bridge_uplinks_dropped_total", {"connection": CONNECTION, "reason": "replaced"}) == 1


async def test_a_batch_is_buffered_whole_or_not_at_all(factory: FakeFactory) -> None:
    factory.start_states = dict.fromkeys(range(3), ConnectionState.OPENING)
    pool, _ = make_pool(factory, buffer_size=3)
    async with pool:
        assert pool.submit("t/0", b"x")
        assert not pool.submit_many(batch(sent(1, 4)), 3)
        assert pool.depth == 1
        assert pool.submit_many(batch(sent(1, 3)), 2)
        assert pool.depth == 3
        factory.clients[1].move_to(ConnectionState.OPENED)
        await settle(lambda: pool.depth == 0)
        await pool.stop()
        with pytest.raises(PoolClosedError, match=r"^connection default is stopped$"):
            pool.submit_many(batch(sent(0, 1)), 1)
    assert factory.clients[1].published == sent(0, 3)


async def test_publishes_never_confirmed_by_stop_are_counted_dropped(factory: FakeFactory) -> None:
    pool, registry = make_pool(factory, size=1)
    async with pool:
        factory.clients[0].hold_completions = True
        for index in range(3):
            assert pool.submit(f"t/{index}", b"x")
        assert pool.in_flight == 3
    assert sample_value(registry, "bridge_uplinks_dropped_total", {"connection": CONNECTION, "reason": "shutdown"}) == 3
    assert pool.in_flight == 0


async def test_a_control_publish_says_why_it_could_not_go(
    factory: FakeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "CONTROL_OPEN_TIMEOUT_SECS", 0.05)
    limits = RateLimits(aggregate_per_sec=None, per_client_per_sec=1.0, per_client_bytes_per_sec=None)
    pool, _ = make_pool(factory, size=1, limits=limits)
    async with pool:
        await pool.publish_control("fb/1", b"{}")  # the client's one publish in this window
        with pytest.raises(PublishError, match=r"^connection default: no client had room within its limits for 0 s$"):
            await pool.publish_control("fb/2", b"{}")
        factory.clients[0].move_to(ConnectionState.CLOSED)
        with pytest.raises(PublishError, match=r"^connection default: no MQTT client is OPENED for 0 s$"):
            await pool.publish_control("fb/3", b"{}")
    with pytest.raises(PublishError, match=r"^connection default is stopped$"):
        await pool.publish_control("fb/5", b"{}")


async def test_a_control_publish_given_up_by_its_caller_is_not_sent(factory: FakeFactory) -> None:
    factory.start_states = dict.fromkeys(range(3), ConnectionState.CLOSED)
    pool, _ = make_pool(factory)
    async with pool:
        abandoned = asyncio.create_task(pool.publish_control("fb/abandoned", b"{}"))
        await asyncio.sleep(0)
        abandoned.cancel()
        kept = asyncio.create_task(pool.publish_control("fb/kept", b"{}"))
        await asyncio.sleep(0)
        factory.clients[0].move_to(ConnectionState.OPENED)
        await asyncio.wait_for(kept, 2.0)
    assert factory.clients[0].published == [("fb/kept", b"{}")]


def clocked_pool(factory: FakeFactory, limits: RateLimits, *, size: int = 1) -> tuple[MqttPool, FakeClock]:
    clock = FakeClock()
    pool = MqttPool(CONNECTION, PoolSettings(size, 100, limits), factory, UplinkMetrics(new_registry()), clock=clock)
    return pool, clock


async def test_control_publishes_leave_the_uplink_rate_to_uplinks(factory: FakeFactory) -> None:
    limits = RateLimits(aggregate_per_sec=2.0, per_client_per_sec=100.0, per_client_bytes_per_sec=None)
    pool, clock = clocked_pool(factory, limits)
    async with pool:
        for index in range(6):
            assert pool.submit(f"up/{index}", b"u")
        assert factory.clients[0].published == sent(0, 2, "up")  # the uplink rate's burst
        clock.now = 0.5
        await asyncio.wait_for(pool.publish_control("fb/sent", b"{}"), 2.0)
        clock.now = LIMIT_WINDOW_SECS  # a full window later: the uplink rate has both grants again
        await settle(lambda: len(factory.clients[0].published) >= 5)
        assert factory.clients[0].published == [*sent(0, 2, "up"), ("fb/sent", b"{}"), *sent(2, 4, "up")]


async def test_each_publish_takes_its_topic_and_payload_bytes_from_its_client(factory: FakeFactory) -> None:
    limits = RateLimits(aggregate_per_sec=None, per_client_per_sec=None, per_client_bytes_per_sec=1000.0)
    pool, clock = clocked_pool(factory, limits)
    largest = b"x" * (MAX_PUBLISH_BYTES - len("t/0"))  # with its topic, the byte limit's whole burst
    async with pool:
        assert pool.submit("t/0", largest)
        assert pool.submit("t/1", b"x")  # 4 bytes, buffered: the bucket is empty
        control = asyncio.create_task(pool.publish_control("fb/sent", b"{}"))  # 9 bytes, served first
        await asyncio.sleep(0)
        clock.now = 0.009  # 9 bytes refilled: the feedback's, and none left for the uplink in the same turn
        await asyncio.wait_for(control, 2.0)
        assert factory.clients[0].published == [("t/0", largest), ("fb/sent", b"{}")]
        clock.now = 0.013  # 4 more bytes
        await settle(lambda: len(factory.clients[0].published) == 3)
    assert factory.clients[0].published[2] == ("t/1", b"x")


async def test_drain_waits_for_uplinks_still_buffered_when_none_is_in_flight(factory: FakeFactory) -> None:
    limits = RateLimits(aggregate_per_sec=2.0, per_client_per_sec=100.0, per_client_bytes_per_sec=None)
    pool, _ = make_pool(factory, size=1, limits=limits)
    async with pool:
        for index in range(3):
            assert pool.submit(f"t/{index}", b"x")
        await settle(lambda: pool.in_flight == 0)
        assert pool.depth == 1
        assert await pool.drain(3.0) == 0
    assert factory.clients[0].published == sent(0, 3)


async def test_drain_counts_what_is_buffered_and_what_is_in_flight_at_its_deadline(factory: FakeFactory) -> None:
    settings = PoolSettings(size=1, buffer_size=100, limits=RateLimits.lifted(), max_in_flight=3)
    pool = MqttPool(CONNECTION, settings, factory, UplinkMetrics(new_registry()))
    async with pool:
        factory.clients[0].hold_completions = True
        for index in range(5):
            assert pool.submit(f"t/{index}", b"x")
        assert await pool.drain(0.05) == 5  # 3 unconfirmed, 2 buffered


async def test_a_pool_stopped_before_it_started_hands_back_its_buffer(factory: FakeFactory) -> None:
    pool, _ = make_pool(factory)
    assert pool.submit("t/1", b"x")
    assert [topic for topic, *_ in await pool.stop(keep_buffer=True)] == ["t/1"]
    assert factory.clients == []


async def test_a_shared_filter_of_a_one_subscriber_budget_is_held_on_one_client(factory: FakeFactory) -> None:
    budget = plan_budget(pool_size=3, per_connection_per_sec=100, downlink_rate_per_sec=50)
    assert budget.subscribers == 1
    settings = PoolSettings(size=3, buffer_size=10, limits=RateLimits.lifted(), budget=budget)
    pool = MqttPool(CONNECTION, settings, factory, UplinkMetrics(new_registry()))
    pool.add_subscription("$share/g/down/+", _ignore)
    async with pool:
        await settle(lambda: any(client.subscriptions for client in factory.clients))
        # Subscribing is serialised: once a filter added later is held, no further client took the first.
        pool.add_subscription("$share/g/control/+", _ignore)
        await settle(lambda: any("$share/g/control/+" in client.subscriptions for client in factory.clients))
    assert [client.subscriptions for client in factory.clients] == [[], [], ["$share/g/down/+", "$share/g/control/+"]]


async def test_failed_publishes_are_logged_once_per_run_of_failures(
    factory: FakeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=pool_module.__name__)
    pool, _ = make_pool(factory, size=1)
    async with pool:
        factory.clients[0].fail_publishes = True
        for index in range(3):
            pool.submit(f"t/{index}", b"x")
        await settle(lambda: pool.in_flight == 0)
        factory.clients[0].fail_publishes = False
        pool.submit("t/ok", b"x")
        await settle(lambda: pool.in_flight == 0)
        factory.clients[0].fail_publishes = True
        pool.submit("t/again", b"x")
        await settle(lambda: pool.in_flight == 0)
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].startswith("connection default: 3 uplink publishes failed (AWS_IO_SOCKET_CLOSED)")
    assert messages[1].startswith("connection default: 1 uplink publishes failed (AWS_IO_SOCKET_CLOSED)")
    assert len(messages) == 2


async def test_starting_twice_builds_the_clients_once(factory: FakeFactory) -> None:
    pool, _ = make_pool(factory)
    async with pool:
        await pool.start()
        assert len(factory.clients) == 3


async def test_every_client_state_is_labelled_with_its_connection_and_client(factory: FakeFactory) -> None:
    factory.start_states = {0: ConnectionState.OPENING, 1: ConnectionState.UNREACHABLE}
    pool, registry = make_pool(factory)
    async with pool:
        samples = [
            sample.labels
            for metric in registry.collect()
            if metric.name == "bridge_mqtt_client_state"
            for sample in metric.samples
            if sample.value == 1
        ]
    current = {(labels["connection"], labels["client_id"], labels["bridge_mqtt_client_state"]) for labels in samples}
    assert current == {
        (CONNECTION, "test-task-0", "OPENING"),
        (CONNECTION, "test-task-1", "UNREACHABLE"),
        (CONNECTION, "test-task-2", "OPENED"),
    }


async def test_an_uplink_waits_for_the_uplink_rate_even_with_a_client_free(factory: FakeFactory) -> None:
    limits = RateLimits(aggregate_per_sec=10.0, per_client_per_sec=100.0, per_client_bytes_per_sec=None)
    pool, _ = clocked_pool(factory, limits)
    async with pool:
        for index in range(3):
            assert pool.submit(f"up/{index}", b"u")
        assert (factory.clients[0].published, pool.depth) == (sent(0, 2, "up"), 1)  # the burst, then a 0.1 s pace


async def test_a_full_buffer_adopts_nothing(factory: FakeFactory) -> None:
    factory.start_states = dict.fromkeys(range(3), ConnectionState.OPENING)
    pool, registry = make_pool(factory, buffer_size=1)
    assert pool.submit("t/own", b"x")
    assert pool.adopt([("t/1", b"1", 0.0, (), None), ("t/2", b"2", 0.0, (), None)]) == 2
    assert pool.depth == 1
    assert sample_value(registry, "bridge_uplinks_dropped_total", {"connection": CONNECTION, "reason": "replaced"}) == 2


async def test_round_robin_skips_a_client_without_a_grant_and_resumes_after_the_one_that_published(
    factory: FakeFactory,
) -> None:
    limits = RateLimits(aggregate_per_sec=None, per_client_per_sec=1.0, per_client_bytes_per_sec=None)
    pool, clock = clocked_pool(factory, limits, size=3)
    pool.add_subscription("$share/g/down/+", _ignore)
    async with pool:
        factory.clients[1].deliver("down/1", b"d")  # client 1's one publish a second goes to this delivery
        for index in range(3):
            assert pool.submit(f"up/{index}", b"u")
        assert [len(client.published) for client in factory.clients] == [1, 0, 1]  # up/0 on 0, up/1 skips 1 to 2
        clock.now = LIMIT_WINDOW_SECS
        await settle(lambda: pool.depth == 0)
    # After client 2, the turn is client 0's again.
    assert [client.published for client in factory.clients] == [
        [*sent(0, 1, "up"), *sent(2, 3, "up")],
        [],
        sent(1, 2, "up"),
    ]


# --- stop, the reaper and the dispatcher's turns ------------------------------------------------------------------
async def test_stop_counts_only_the_publishes_still_unconfirmed_as_dropped(factory: FakeFactory) -> None:
    pool, registry = make_pool(factory, size=1)
    async with pool:
        for index in range(2):
            assert pool.submit(f"t/{index}", b"x")
        await settle(lambda: pool.in_flight == 0)
        factory.clients[0].hold_completions = True
        assert pool.submit("t/held", b"x")
    assert sample_value(registry, "bridge_uplinks_dropped_total", {"connection": CONNECTION, "reason": "shutdown"}) == 1
    assert sample_value(registry, "bridge_uplinks_published_total", {"connection": CONNECTION}) == 2


async def test_stop_fails_waiting_control_publishes_and_stops_every_client_even_one_that_raises(
    factory: FakeFactory,
) -> None:
    factory.start_states = dict.fromkeys(range(3), ConnectionState.CLOSED)
    pool, _ = make_pool(factory)
    await pool.start()

    async def broken_stop() -> None:
        raise RuntimeError("stop failed")

    factory.clients[0].stop = broken_stop  # type: ignore[method-assign]
    waiting = asyncio.create_task(pool.publish_control("fb/sent", b"{}"))
    await asyncio.sleep(0)
    await pool.stop()
    with pytest.raises(PublishError, match=r"^connection default is stopped$"):
        await waiting
    assert [client.state for client in factory.clients[1:]] == [ConnectionState.DEACTIVATED] * 2


async def test_the_latency_runs_from_acceptance_to_confirmation(factory: FakeFactory) -> None:
    clock = FakeClock()
    registry = new_registry()
    pool = MqttPool(CONNECTION, PoolSettings(1, 10, RateLimits.lifted()), factory, UplinkMetrics(registry), clock=clock)
    async with pool:
        factory.clients[0].hold_completions = True
        clock.now = 5.0
        assert pool.submit("t/0", b"x")
        clock.now = 5.25
        factory.clients[0].release()
        await settle(lambda: pool.in_flight == 0)
    latency = sample_value(registry, "bridge_uplink_publish_latency_seconds_sum", {"connection": CONNECTION})
    assert latency == pytest.approx(0.25)


async def test_a_run_of_failures_over_several_reaps_is_logged_once(
    factory: FakeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=pool_module.__name__)
    pool, _ = make_pool(factory, size=1)
    async with pool:
        factory.clients[0].fail_publishes = True
        for index in range(3):
            pool.submit(f"t/{index}", b"x")
            await settle(lambda: pool.in_flight == 0)  # each failure reaped on its own
    assert len(caplog.records) == 1


async def test_uplinks_beyond_one_turn_follow_at_once(factory: FakeFactory) -> None:
    count = 3 * pool_module.MAX_PUBLISHES_PER_TURN
    factory.start_states = {0: ConnectionState.OPENING}
    pool, _ = make_pool(factory, size=1, buffer_size=count)
    async with pool:
        assert pool.submit_many(batch(sent(0, count)), count)
        factory.clients[0].move_to(ConnectionState.OPENED)
        await settle(lambda: len(factory.clients[0].published) == count, timeout_secs=0.5)  # no pause between turns


async def test_the_dispatcher_keeps_serving_uplinks_after_serving_a_control_publish(factory: FakeFactory) -> None:
    pool, _ = make_pool(factory, size=1)
    async with pool:
        await asyncio.wait_for(pool.publish_control("fb/sent", b"{}"), 2.0)
        factory.clients[0].move_to(ConnectionState.CLOSED)
        assert pool.submit("t/0", b"x")  # buffered: for the dispatcher
        factory.clients[0].move_to(ConnectionState.OPENED)
        await settle(lambda: pool.depth == 0)
    assert factory.clients[0].published == [("fb/sent", b"{}"), ("t/0", b"x")]


async def test_one_confirmed_publish_makes_room_for_one_more(factory: FakeFactory) -> None:
    settings = PoolSettings(size=1, buffer_size=10, limits=RateLimits.lifted(), max_in_flight=2)
    pool = MqttPool(CONNECTION, settings, factory, UplinkMetrics(new_registry()))
    async with pool:
        factory.clients[0].hold_completions = True
        for index in range(3):
            assert pool.submit(f"t/{index}", b"x")
        assert (len(factory.clients[0].published), pool.depth) == (2, 1)
        factory.clients[0].held.pop(0)(None)  # one of the two confirmed
        await settle(lambda: pool.depth == 0)
        factory.clients[0].release()
    assert factory.clients[0].published == sent(0, 3)


async def test_a_state_reported_by_a_client_of_another_pool_is_ignored(factory: FakeFactory) -> None:
    factory.start_states = dict.fromkeys(range(3), ConnectionState.CLOSED)
    pool, _ = make_pool(factory)
    async with pool:
        stray = FakeClient("other-task-0", factory.clients[0].callbacks)
        stray.move_to(ConnectionState.OPENED)
        assert pool.opened_clients == 0
        assert pool.state is ConnectionState.CLOSED
