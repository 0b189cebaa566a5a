"""The live view's capture: a bounded ring, and a tap that is in the uplink path only while a page polls."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from bridge_container.console.capture import ControlLog, UplinkTap, UplinkWatch
from bridge_container.console.dashboard import ClientEvents, RateHistory, sparkline
from bridge_container.ingress.pipeline import UplinkSink
from bridge_container.mqtt.port import UserProperties, UserProperty

DEV_EUI = (UserProperty("DevEUI", "70B3D57ED0000001"),)


class Pool:
    """A sink that accepts until full, and a control publisher."""

    def __init__(self, capacity: int = 100) -> None:
        self.capacity = capacity
        self.items: list[tuple[str, bytes, UserProperties]] = []
        self.controls: list[tuple[str, bytes]] = []

    @property
    def free(self) -> int:
        return self.capacity - len(self.items)

    @property
    def depth(self) -> int:
        return len(self.items)

    def submit(
        self,
        topic: str,
        payload: bytes,
        properties: UserProperties = (),
        waiter: asyncio.Future[str | None] | None = None,
    ) -> bool:
        if not self.free:
            return False
        self.items.append((topic, payload, properties))
        return True

    def submit_many(
        self,
        items: list[tuple[str, bytes, UserProperties]],
        count: int,
        waiters: Sequence[asyncio.Future[str | None]] | None = None,
    ) -> bool:
        if count > self.free:
            return False
        self.items.extend(items)
        return True

    async def publish_control(self, topic: str, payload: bytes) -> None:
        self.controls.append((topic, payload))

    def add_subscription(self, topic_filter: str, handler: object) -> None:
        raise AssertionError("not used here")


class Ingress:
    def __init__(self, sink: UplinkSink) -> None:
        self.sink = sink

    def use_sink(self, sink: UplinkSink) -> UplinkSink:
        previous, self.sink = self.sink, sink
        return previous


def test_the_tap_forwards_and_keeps_only_accepted_uplinks_in_a_bounded_ring() -> None:
    pool = Pool(capacity=5)
    tap = UplinkTap(pool, ring_size=3)
    results = [tap.submit(f"t/{n}", b"{}", DEV_EUI) for n in range(6)]
    assert results == [True] * 5 + [False]
    assert pool.items[0] == ("t/0", b"{}", DEV_EUI)  # forwarded with its properties
    assert len(pool.items) == 5
    assert [topic for _at, topic, _payload, _properties in tap.ring] == ["t/2", "t/3", "t/4"]
    assert {properties for *_rest, properties in tap.ring} == {DEV_EUI}
    assert tap.free == 0
    assert tap.depth == 5


def test_a_batch_through_the_tap_keeps_its_last_items() -> None:
    pool = Pool()
    tap = UplinkTap(pool, ring_size=2)
    assert tap.submit_many([("a", b"1", ()), ("b", b"2", ()), ("c", b"3", DEV_EUI)], 3)
    assert [(topic, properties) for _at, topic, _payload, properties in tap.ring] == [("b", ()), ("c", DEV_EUI)]


async def test_the_watch_taps_the_ingress_while_polled_and_gives_the_pool_back_when_idle() -> None:
    pool = Pool()
    ingress = Ingress(pool)
    watch = UplinkWatch(ingress, pool, idle_secs=0.05)
    tap: UplinkSink = watch.tap
    assert ingress.sink is pool  # no page: the pool itself, nothing in between
    watch.touch()
    assert ingress.sink is tap
    ingress.sink.submit("tpx/things/1/uplink", b"{}")
    await asyncio.sleep(0.03)
    watch.touch()  # a poll within the idle time keeps the tap
    await asyncio.sleep(0.03)
    assert ingress.sink is tap
    await asyncio.sleep(0.05)
    assert ingress.sink is pool
    assert [topic for _at, topic, _payload, _properties in watch.tap.ring] == ["tpx/things/1/uplink"]


async def test_the_control_log_publishes_then_records() -> None:
    pool = Pool()
    log = ControlLog(pool, ring_size=2)
    for status in ("queued", "sent", "failed"):
        await log.publish_control(f"tpx/things/01/downlink/{status}", b"{}")
    assert len(pool.controls) == 3
    assert [topic.rsplit("/", 1)[1] for _at, topic, _payload, _properties in log.ring] == ["sent", "failed"]


def test_rates_come_from_counter_differences_and_a_restart_starts_the_history_again() -> None:
    now = [100.0]
    history = RateHistory(clock=lambda: now[0])
    for published, sent in ((0, 0), (10, 1), (30, 1)):
        history.record(published, sent)
        now[0] += 2.0
    assert [(round(up, 1), round(down, 1)) for _ago, up, down in history.rates()] == [(5.0, 0.5), (10.0, 0.0)]
    history.record(3, 0)  # counters went back: a new runtime
    assert history.rates() == []
    assert sparkline([]) == ""
    assert sparkline([(0.0, 5.0)]).startswith("300.0,")


def test_client_events_keep_the_last_warning_per_client_id() -> None:
    events = ClientEvents()
    logger = logging.getLogger("bridge_container.test_console_events")
    logger.addHandler(events)
    try:
        logger.warning("MQTT client %s to %s:%s: %s", "bridge-0", "host", 8883, "UNREACHABLE")
        logger.info("MQTT client %s OPENED", "bridge-0")  # below WARNING: not kept
    finally:
        logger.removeHandler(events)
    last = events.last("bridge-0")
    assert last is not None
    assert last[1] == "MQTT client bridge-0 to host:8883: UNREACHABLE"
    assert events.last("bridge-1") is None


def test_client_events_add_the_exceptions_last_line_of_a_logged_traceback() -> None:
    events = ClientEvents()
    logger = logging.getLogger("bridge_container.test_console_events")
    logger.addHandler(events)
    try:
        try:
            raise ValueError("the connection has no endpoint")
        except ValueError:
            logger.exception("connection %s (version %d) could not be started", "c-1", 1)
    finally:
        logger.removeHandler(events)
    last = events.last("c-1")
    assert last is not None
    assert last[1] == "connection c-1 (version 1) could not be started: ValueError: the connection has no endpoint"
