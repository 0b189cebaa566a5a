"""The network servers' ids of downlinks, translated back to the caller's correlation id in their reports.

ThingPark: a CorrelationID is 16 hex digits that ThingPark echoes in its downlink Sent and Rejected reports. A
caller's correlation id of that shape is sent as it is, so reports can be matched by any bridge task. Any other
id is replaced by a random one for ThingPark, remembered (bounded, in this task's memory) to translate reports
back; a report reaching another task then carries ThingPark's id only.

ChirpStack: the queue-item id it gives each enqueued downlink (and echoes in its txack, ack and log events) is
remembered the same way, with the same bound; a report reaching another task carries no correlation id.
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict

_THINGPARK_ID_RE = re.compile(r"[0-9A-Fa-f]{16}")
DEFAULT_CAPACITY = 10_000


class CorrelationIds:
    """ThingPark CorrelationID ↔ the caller's correlation id, for the last ``capacity`` downlinks."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._callers: OrderedDict[str, str | None] = OrderedDict()

    def assign(self, correlation_id: str | None) -> str:
        """The CorrelationID to send to ThingPark for a downlink with ``correlation_id``."""
        if correlation_id is not None and _THINGPARK_ID_RE.fullmatch(correlation_id):
            return correlation_id
        thingpark_id = secrets.token_hex(8).upper()
        self._callers[thingpark_id] = correlation_id
        while len(self._callers) > self._capacity:
            self._callers.popitem(last=False)
        return thingpark_id

    def remember(self, reference: str, correlation_id: str) -> None:
        """Remember that the network server calls the downlink with ``correlation_id`` ``reference``."""
        self._callers[reference] = correlation_id
        while len(self._callers) > self._capacity:
            self._callers.popitem(last=False)

    def lookup(self, reference: str) -> str | None:
        """The caller's correlation id of the downlink the network server calls ``reference``; None if unknown."""
        return self._callers.get(reference)

    def resolve(self, thingpark_id: str) -> str | None:
        """The caller's correlation id for a CorrelationID from a ThingPark report (the id itself if unknown)."""
        key = thingpark_id.upper()
        if key in self._callers:
            return self._callers[key]
        return thingpark_id
