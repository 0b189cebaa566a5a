"""How one pool shares AWS IoT's publishes per connection between uplinks, downlinks and feedback.

AWS IoT allows 100 publishes per second on one connection and counts both directions together: what the client
publishes (uplinks, downlink feedback) and what is delivered to it (downlinks on its subscription). The excess is
discarded silently. A pool of ``poolSize`` clients therefore has ``poolSize x perClientRatePerSec`` publishes per
second in all, and every downlink delivered to it uses one of them.

The downlink subscription is spread over ``subscribers`` clients of the pool through the shared-subscription group
(the broker hands each downlink to one of them), each receiving at most half its connection's budget; the other
half stays for its own publishes. Each subscriber reserves ``inbound_reserved_per_sec`` for deliveries, so its
publishes are capped at the rest. Downlink feedback is published before uplinks on whichever client has room.

Trade-off against the seed's "at most 10 clients, 1000 uplinks/s": with the defaults (10 clients, 100 downlinks/s)
two clients subscribe, each reserving 50/s, so the pool publishes at most 900/s of uplinks and feedback together
while downlinks arrive at their full rate; when no downlink arrives the reservation goes unused. A task that needs
1000 uplinks/s and 100 downlinks/s at once needs a second task (or a second connection).

Headroom: AWS counts what arrives in a rolling second, and network and scheduling jitter can bring publishes
closer together at the broker than they left the bridge. Every publish limit therefore holds its count over a
window of ``1 s + JITTER_MARGIN_SECS``: any 1-second window at the broker then stays within the limit as long as
jitter stays below the margin, at the cost of pacing at ``limit / (1 + margin)`` (95.2/s for 100/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from bridge_domain.quotas import PUBLISHES_PER_SEC_PER_CONNECTION

RECEIVER_WINDOW_SECS: Final = 1.0
"""The window AWS IoT's per-connection limit is counted over."""
JITTER_MARGIN_SECS: Final = 0.05
"""How much closer together publishes may arrive than they left; measured at the local stand-in (README)."""
LIMIT_WINDOW_SECS: Final = RECEIVER_WINDOW_SECS + JITTER_MARGIN_SECS
INBOUND_SHARE_OF_CONNECTION: Final = 0.5
"""The most of one connection's budget that deliveries may take; the rest stays for that client's publishes."""


@dataclass(frozen=True, slots=True)
class PoolBudget:
    """The publish budget of one pool: its clients, the subscribers among them and what each reserves."""

    pool_size: int
    per_connection_per_sec: int
    subscribers: int
    inbound_reserved_per_sec: int
    downlink_rate_per_sec: int

    @property
    def outbound_per_subscriber_per_sec(self) -> int:
        """The publishes a subscribing client may make per second (the rest is reserved for deliveries)."""
        return self.per_connection_per_sec - self.inbound_reserved_per_sec

    @property
    def outbound_per_sec(self) -> int:
        """Publishes per second the pool may make in all (uplinks and feedback) while downlinks arrive."""
        return self.pool_size * self.per_connection_per_sec - self.subscribers * self.inbound_reserved_per_sec

    @property
    def subscriber_slots(self) -> range:
        """The pool slots that hold the downlink subscription: the highest ``subscribers`` ones."""
        return range(self.pool_size - self.subscribers, self.pool_size)

    @property
    def inbound_per_sec(self) -> int:
        """Downlinks per second the pool can receive within the budget."""
        return self.subscribers * self.inbound_reserved_per_sec

    def warnings(self) -> list[str]:
        """What the operator should know when the pool cannot receive the configured downlink rate."""
        if self.subscribers == 0 or self.inbound_per_sec >= self.downlink_rate_per_sec:
            return []
        return [
            f"configuration.downlinkRatePerSec: {self.downlink_rate_per_sec}/s cannot be received by poolSize "
            f"{self.pool_size}: each subscribing client takes at most {self.inbound_reserved_per_sec} downlinks/s "
            f"(AWS IoT counts deliveries against the same {self.per_connection_per_sec} publishes/s per connection), "
            f"so the pool receives at most {self.inbound_per_sec}/s; AWS discards the rest"
        ]


def plan_budget(
    pool_size: int,
    per_connection_per_sec: int = PUBLISHES_PER_SEC_PER_CONNECTION,
    downlink_rate_per_sec: int | None = None,
) -> PoolBudget:
    """The budget of a pool; ``downlink_rate_per_sec`` None when the connection does not subscribe to downlinks."""
    if pool_size < 1 or per_connection_per_sec < 1:
        raise ValueError("pool_size and per_connection_per_sec must be >= 1")
    if downlink_rate_per_sec is None or downlink_rate_per_sec <= 0:
        return PoolBudget(pool_size, per_connection_per_sec, 0, 0, 0)
    share = math.floor(per_connection_per_sec * INBOUND_SHARE_OF_CONNECTION)
    if share < 1:  # a 1/s connection has nothing to share: one subscriber, nothing reserved (see warnings())
        return PoolBudget(pool_size, per_connection_per_sec, 1, 0, downlink_rate_per_sec)
    subscribers = min(pool_size, math.ceil(downlink_rate_per_sec / share))
    reserved = min(share, math.ceil(downlink_rate_per_sec / subscribers))
    return PoolBudget(pool_size, per_connection_per_sec, subscribers, reserved, downlink_rate_per_sec)
