"""AWS IoT Core's per-connection rules as pure accounting: what AWS would do with a CONNECT, PUBLISH or SUBSCRIBE.

How AWS reacts, and where that is written (AWS IoT Core endpoints and quotas, "Message broker and protocol limits";
AWS IoT developer guide, "Reserved topics" and "MQTT 5 reason codes"):

* Publish requests per second per connection, 100, not adjustable: "AWS IoT Core restricts each client connection to
  a maximum number of inbound and outbound publish requests per second. Publish requests that exceed that limit are
  discarded." One rolling window counts both directions; a discarded publish does not use the budget.
  Inbound QoS 1 over the limit: MQTT 5 clients get PUBACK 0x97 (Quota exceeded, listed for PUBACK in AWS's MQTT 5
  reason-code table); MQTT 3.1.1 has no negative PUBACK, so the publish is discarded without one. Outbound QoS 1
  over the limit never reaches the client (the proxy acknowledges it to the broker itself).
* Topic size 256 bytes and at most 7 slashes, both "excluding the first 3 mandatory segments for Basic Ingest topics
  ($aws/rules/rule-name/)"; message size 128 KB: "AWS IoT Core rejects publish and connect requests larger than
  this size". Reserved topics: "Unsupported publish or subscribe operations to reserved topics can result in a
  terminated connection." The stand-in takes the strict reading for all four: the publish is not delivered and the
  connection is closed (MQTT 5 DISCONNECT with the reason code), so a test cannot miss it.
* Subscriptions per connection, 50: AWS "might reject subscription requests on the same connection in excess of this
  amount and the connection will be closed": SUBACK with failure codes, then DISCONNECT 0x97.
* Unacknowledged inbound QoS 1 publishes per connection, 100 ("Maximum number of unacknowledged inbound QoS 1
  publishes"): counted (``qos1_in_flight``) when a client has 100 forwarded to the broker without their PUBACK yet
  and sends another; AWS does not say what it does then, so the stand-in forwards it anyway.
* Connect requests per second per client ID, 1: a second CONNECT of a client ID within a second of the last accepted
  one is refused (CONNACK 0x9F Connection rate exceeded; 3.1.1: 0x03 Server unavailable).
* Client ID in use: "a connection with a duplicate client ID disconnects the older one" (DISCONNECT 0x8E).
* Basic Ingest (``$aws/rules/<rule>/...``) goes to the rule only: no subscriber sees it, but it is a publish of the
  connection for the rate.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, Final

from bridge_domain import quotas

WINDOW_SECS: Final = 1.0
BASIC_INGEST_PREFIX: Final = "$aws/rules/"
CLOSED_CONNECTIONS_KEPT: Final = 1_000  # figures of closed connections kept for /violations (bounded memory)
BASIC_INGEST_TOPICS_KEPT: Final = 1_000  # the latest Basic Ingest topics, for tests to see where uplinks went
UNKNOWN_CLIENT: Final = "<no CONNECT yet>"
_SLOT_SUFFIX: Final = re.compile(r"-\d+$")


def client_group(client_id: str) -> str:
    """The client ID without a trailing ``-<number>`` (a pool's slot): the clients of one pool share a group."""
    return _SLOT_SUFFIX.sub("", client_id)


# Reserved topics a client may publish to (AWS IoT developer guide, "Reserved topics": the rows whose allowed client
# operation is Publish). Subscribe-only families ($aws/events, $aws/sitewise, .../tunnels/notify, the /accepted and
# /rejected answers) are not publishable; neither is any other topic starting with "$".
_FORMAT = r"(json|cbor)"
_PUBLISHABLE_RESERVED: Final = tuple(
    re.compile(pattern)
    for pattern in (
        r"\$aws/things/[^/]+/shadow/.+",  # device shadow: get, update, delete, name/<shadow>/...
        r"\$aws/things/[^/]+/jobs/.+",  # jobs: get, start-next, <jobId>/get, <jobId>/update
        rf"\$aws/things/[^/]+/defender/metrics/{_FORMAT}",  # Device Defender metrics
        rf"\$aws/things/[^/]+/streams/[^/]+/(get|describe)/{_FORMAT}",  # MQTT-based file delivery
        rf"\$aws/certificates/create(-from-csr)?/{_FORMAT}",  # fleet provisioning
        rf"\$aws/provisioning-templates/[^/]+/provision/{_FORMAT}",
        r"\$aws/device_location/[^/]+/get_position_estimate",  # Device Location
        rf"\$aws/commands/(things|clients)/[^/]+/executions/[^/]+/response/{_FORMAT}",  # commands
    )
)
_BASIC_INGEST: Final = re.compile(r"\$aws/rules/([^/]+)/(.+)")


class Reason(StrEnum):
    """Why AWS IoT Core would refuse or discard something; the counters' keys."""

    PUBLISH_RATE = "publish_rate"
    TOPIC_TOO_LONG = "topic_too_long"
    TOPIC_TOO_DEEP = "topic_too_deep"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RESERVED_TOPIC = "reserved_topic"
    SUBSCRIPTION_LIMIT = "subscription_limit"
    CONNECT_RATE = "connect_rate"
    DUPLICATE_CLIENT_ID = "duplicate_client_id"
    CLIENT_ID_TOO_LONG = "client_id_too_long"
    QOS1_IN_FLIGHT = "qos1_in_flight"


class Direction(Enum):
    INBOUND = "inbound"  # client → broker
    OUTBOUND = "outbound"  # broker → client


class Action(Enum):
    FORWARD = "forward"
    INGEST = "ingest"  # Basic Ingest: accepted, goes to the rule, fanned out to nobody
    DISCARD = "discard"  # dropped silently, the connection stays
    REJECT = "reject"  # dropped and the connection closed


@dataclass(frozen=True, slots=True)
class Limits:
    """The quotas the stand-in enforces (defaults: ``bridge_domain.quotas``)."""

    publishes_per_window: int = quotas.PUBLISHES_PER_SEC_PER_CONNECTION
    max_topic_bytes: int = quotas.MAX_TOPIC_BYTES
    max_topic_slashes: int = quotas.MAX_TOPIC_SLASHES
    max_payload_bytes: int = quotas.MAX_PAYLOAD_BYTES
    max_subscriptions: int = quotas.MAX_SUBSCRIPTIONS_PER_CONNECTION
    max_client_id_bytes: int = quotas.MAX_CLIENT_ID_BYTES
    connects_per_window: int = quotas.CONNECTS_PER_SEC_PER_CLIENT_ID
    max_unacked_qos1: int = quotas.MAX_UNACKED_QOS1_PUBLISHES_PER_CONNECTION


@dataclass(frozen=True, slots=True)
class PublishVerdict:
    action: Action
    reason: Reason | None = None
    rule: str | None = None  # Basic Ingest: the rule's name


FORWARDED: Final = PublishVerdict(Action.FORWARD)


@dataclass(frozen=True, slots=True)
class ConnectVerdict:
    accepted: bool
    reason: Reason | None = None
    taken_over: ConnectionAccount | None = None  # the older connection of this client ID, to be closed


class Ledger:
    """Counts by reason and by client ID."""

    def __init__(self) -> None:
        self.by_reason: Counter[str] = Counter()
        self.by_client: dict[str, Counter[str]] = {}

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def count(self, client_id: str, reason: Reason) -> None:
        self.by_reason[reason.value] += 1
        self.by_client.setdefault(client_id, Counter())[reason.value] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_reason": dict(self.by_reason),
            "by_client": {client: dict(reasons) for client, reasons in self.by_client.items()},
        }


class _Window:
    """Events in a rolling window of ``WINDOW_SECS``; remembers the most it ever held."""

    __slots__ = ("events", "most")

    def __init__(self) -> None:
        self.events: deque[float] = deque()
        self.most = 0

    def count_at(self, now: float) -> int:
        events, start = self.events, now - WINDOW_SECS
        while events and events[0] <= start:
            events.popleft()
        return len(events)

    def add(self, now: float) -> None:
        self.count_at(now)
        self.events.append(now)
        self.most = max(self.most, len(self.events))


@dataclass(eq=False, slots=True)
class ConnectionAccount:
    """What the rules keep for one client connection."""

    serial: int
    enforced: bool
    client_id: str = UNKNOWN_CLIENT
    protocol_level: int = 4
    subscriptions: set[str] = field(default_factory=set)
    publishes: int = 0  # offered, both directions
    discarded: int = 0
    open: bool = True
    accepted_window: _Window = field(default_factory=_Window)  # what the rate rule counts
    offered_window: _Window = field(default_factory=_Window)  # every publish, for the figures
    group_window: _Window | None = None  # shared by the connections of one client group, for the figures
    unacked_qos1: set[int] = field(default_factory=set)  # packet IDs of inbound QoS 1 publishes awaiting PUBACK

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "connection": self.serial,
            "enforced": self.enforced,
            "open": self.open,
            "publishes": self.publishes,
            "discarded": self.discarded,
            "max_1s_window": self.offered_window.most,
        }


class IotCoreRules:
    """The accounting of one stand-in process: connections, client IDs, violations and rolling-window figures.

    Connections opened with ``enforced=False`` (the audit listener) are held to the same rules, but what AWS would
    have done is only counted, in a separate ledger, and nothing is dropped.
    """

    def __init__(self, limits: Limits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or Limits()
        self._clock = clock
        self._serials = itertools.count(1)
        self._open: dict[int, ConnectionAccount] = {}
        self._holders: dict[str, ConnectionAccount] = {}  # client ID → its current connection
        self._last_connects: dict[str, _Window] = {}
        self.reset()

    def reset(self) -> None:
        """Forget the counts and figures (open connections stay held to the rules)."""
        self.violations = Ledger()
        self.audited = Ledger()
        self.basic_ingest: Counter[str] = Counter()
        self.basic_ingest_topics: deque[str] = deque(maxlen=BASIC_INGEST_TOPICS_KEPT)
        self._aggregate = _Window()
        self._groups: dict[str, _Window] = {}
        for account in self._open.values():
            if account.enforced and account.client_id != UNKNOWN_CLIENT:
                account.group_window = self._groups.setdefault(client_group(account.client_id), _Window())
        self._closed: deque[ConnectionAccount] = deque(maxlen=CLOSED_CONNECTIONS_KEPT)
        for account in self._open.values():
            account.publishes = account.discarded = 0
            account.offered_window.most = len(account.offered_window.events)

    # --- connections -------------------------------------------------------------------------------------------
    def open_connection(self, *, enforced: bool = True) -> ConnectionAccount:
        account = ConnectionAccount(next(self._serials), enforced)
        self._open[account.serial] = account
        return account

    def close_connection(self, account: ConnectionAccount) -> None:
        if not account.open:
            return
        account.open = False
        self._open.pop(account.serial, None)
        if self._holders.get(account.client_id) is account:
            del self._holders[account.client_id]
        if account.client_id != UNKNOWN_CLIENT or account.publishes:  # not a port probe or a refused handshake
            self._closed.append(account)

    def _count(self, account: ConnectionAccount, reason: Reason) -> None:
        (self.violations if account.enforced else self.audited).count(account.client_id, reason)

    def connect(
        self, account: ConnectionAccount, client_id: str, client_id_bytes: int, protocol_level: int
    ) -> ConnectVerdict:
        account.client_id = client_id
        account.protocol_level = protocol_level
        if account.enforced:
            account.group_window = self._groups.setdefault(client_group(client_id), _Window())
        if client_id_bytes > self.limits.max_client_id_bytes:
            self._count(account, Reason.CLIENT_ID_TOO_LONG)
            return ConnectVerdict(not account.enforced, Reason.CLIENT_ID_TOO_LONG)
        now = self._clock()
        recent = self._last_connects.setdefault(client_id, _Window())
        if recent.count_at(now) >= self.limits.connects_per_window:
            self._count(account, Reason.CONNECT_RATE)
            if account.enforced:
                return ConnectVerdict(False, Reason.CONNECT_RATE)
        recent.add(now)
        older = self._holders.get(client_id)
        self._holders[client_id] = account
        if older is not None and older.open and older is not account:
            self._count(older, Reason.DUPLICATE_CLIENT_ID)
            return ConnectVerdict(True, Reason.DUPLICATE_CLIENT_ID, taken_over=older)
        return ConnectVerdict(True)

    # --- publishes ---------------------------------------------------------------------------------------------
    def _publish_problem(self, topic: str, topic_bytes: int, payload_bytes: int) -> tuple[Reason | None, str | None]:
        """A rule an inbound publish breaks, and the Basic Ingest rule name when it is one."""
        rule = None
        checked, checked_bytes = topic, topic_bytes
        if topic.startswith("$"):
            ingest = _BASIC_INGEST.fullmatch(topic)
            if ingest is not None:
                rule = ingest.group(1)
                checked = ingest.group(2)
                checked_bytes = len(checked.encode())
            elif not any(pattern.fullmatch(topic) for pattern in _PUBLISHABLE_RESERVED):
                return Reason.RESERVED_TOPIC, None
        if checked_bytes > self.limits.max_topic_bytes:
            return Reason.TOPIC_TOO_LONG, rule
        if checked.count("/") > self.limits.max_topic_slashes:
            return Reason.TOPIC_TOO_DEEP, rule
        if payload_bytes > self.limits.max_payload_bytes:
            return Reason.PAYLOAD_TOO_LARGE, rule
        return None, rule

    def publish(
        self, account: ConnectionAccount, direction: Direction, topic: str, topic_bytes: int, payload_bytes: int
    ) -> PublishVerdict:
        now = self._clock()
        account.publishes += 1
        account.offered_window.add(now)
        if account.enforced:
            self._aggregate.add(now)
            if account.group_window is not None:
                account.group_window.add(now)
        rule = None
        if direction is Direction.INBOUND:
            problem, rule = self._publish_problem(topic, topic_bytes, payload_bytes)
            if problem is not None:
                self._count(account, problem)
                if account.enforced:
                    account.discarded += 1
                    return PublishVerdict(Action.REJECT, problem)
        if account.accepted_window.count_at(now) >= self.limits.publishes_per_window:
            self._count(account, Reason.PUBLISH_RATE)
            if account.enforced:
                account.discarded += 1
                return PublishVerdict(Action.DISCARD, Reason.PUBLISH_RATE)
        account.accepted_window.add(now)
        if rule is not None:
            self.basic_ingest[rule] += 1
            self.basic_ingest_topics.append(topic)
            return PublishVerdict(Action.INGEST, rule=rule)
        return FORWARDED

    def qos1_forwarded(self, account: ConnectionAccount, packet_id: int) -> None:
        """An inbound QoS 1 publish went to the broker; counted when the client already had the limit unacknowledged."""
        unacked = account.unacked_qos1
        if packet_id not in unacked and len(unacked) >= self.limits.max_unacked_qos1:
            self._count(account, Reason.QOS1_IN_FLIGHT)
        unacked.add(packet_id)

    def qos1_acknowledged(self, account: ConnectionAccount, packet_id: int) -> None:
        """The broker's PUBACK for an inbound QoS 1 publish went back to the client."""
        account.unacked_qos1.discard(packet_id)

    # --- subscriptions -----------------------------------------------------------------------------------------
    def subscribe(self, account: ConnectionAccount, filters: Iterable[str]) -> Reason | None:
        """None when the filters are taken; else the reason they are refused (the connection then closes)."""
        wanted = account.subscriptions | set(filters)
        if len(wanted) > self.limits.max_subscriptions:
            self._count(account, Reason.SUBSCRIPTION_LIMIT)
            if account.enforced:
                return Reason.SUBSCRIPTION_LIMIT
        account.subscriptions = wanted
        return None

    def unsubscribe(self, account: ConnectionAccount, filters: Iterable[str]) -> None:
        account.subscriptions.difference_update(filters)

    # --- figures -----------------------------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """``/violations``: the counts, Basic Ingest, and the rolling-window figures of every connection."""
        accounts = [*self._closed, *self._open.values()]
        enforced = [account for account in accounts if account.enforced]
        return {
            **self.violations.to_json(),
            "audited": self.audited.to_json(),
            "basic_ingest": dict(self.basic_ingest),
            "basic_ingest_topics": list(self.basic_ingest_topics),
            "windows": {
                "window_secs": WINDOW_SECS,
                "max_1s_aggregate": self._aggregate.most,
                "max_1s_per_connection": max((account.offered_window.most for account in enforced), default=0),
                # A pool's clients are one group (client ID without its slot number): the bridge's own aggregate
                # apart from the other AWS clients of the run (an application publishing downlinks).
                "max_1s_aggregate_by_client_group": {group: window.most for group, window in self._groups.items()},
                "connections": [account.to_json() for account in accounts],
            },
            "limits": {"publishes_per_sec_per_connection": self.limits.publishes_per_window},
        }
