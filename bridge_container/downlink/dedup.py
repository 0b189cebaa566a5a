"""Downlinks already taken, by identity, so a delivery of the same downlink again is not sent to the network twice.

A downlink's identity is, in this order: its MQTT 5 user property ``messageId``; the CorrelationID of a ThingPark
document; the ``queueItemId`` of the bridge's form (ChirpStack's queue-item id). One without any of them is never
a duplicate. An identity is held from the moment the downlink is accepted (so a copy arriving while the first is
in flight is a duplicate too); once the network server accepted it, it is remembered for ``window_secs`` among the
last ``capacity`` identities; when it failed or expired, it is forgotten, so the application may send it again.
The memory is this task's: another task, or this one after a restart, does not know what it saw.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

DEFAULT_CAPACITY: Final = 10_000
DEFAULT_WINDOW_SECS: Final = 3600.0  # AWS IoT's default persistent session expiry: the usual redelivery horizon
MESSAGE_ID_PROPERTY: Final = "messageId"

_IN_FLIGHT: Final = -1.0


class DuplicateFilter:
    """Identities of the downlinks in flight or sent lately; bounded in count and in age."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        window_secs: float = DEFAULT_WINDOW_SECS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1 or window_secs <= 0:
            raise ValueError("capacity must be >= 1 and window_secs > 0")
        self.capacity = capacity
        self.window_secs = window_secs
        self._clock = clock
        # identity → when the network server accepted it (_IN_FLIGHT until then), oldest first.
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def begin(self, identity: str) -> bool:
        """Take ``identity``: True when it is new, False for a duplicate (in flight, or sent within the window)."""
        self._forget_old()
        if identity in self._seen:
            return False
        self._seen[identity] = _IN_FLIGHT
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def finish(self, identity: str, *, sent: bool) -> None:
        """The downlink ``identity`` ended: remembered when sent, forgotten when it failed or expired."""
        if not sent:
            self._seen.pop(identity, None)
            return
        self._seen[identity] = self._clock()
        self._seen.move_to_end(identity)

    def _forget_old(self) -> None:
        oldest = self._clock() - self.window_secs
        while self._seen:
            identity, at = next(iter(self._seen.items()))
            if at == _IN_FLIGHT or at > oldest:
                return
            del self._seen[identity]
