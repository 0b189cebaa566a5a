"""One interface for every network server's downlink API, and the choice of server for each downlink."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bridge_container.downlink.documents import DownlinkRequest
from bridge_container.downlink.exceptions import NoLnsError
from bridge_container.downlink.sender import LnsCall
from bridge_domain.lns import LnsKind


class LnsAdapter(Protocol):
    """Turns a downlink into a call of one network server's API."""

    @property
    def kind(self) -> LnsKind: ...

    def prepare(self, request: DownlinkRequest) -> LnsCall: ...


class LnsRouter:
    """A document's ``lns`` picks the server; without one, the connection's first usable server takes it."""

    def __init__(self, adapters: Sequence[LnsAdapter]) -> None:
        self._by_kind: dict[LnsKind, LnsAdapter] = {adapter.kind: adapter for adapter in adapters}
        self._default = adapters[0] if adapters else None

    def select(self, kind: LnsKind | None) -> LnsAdapter:
        adapter = self._default if kind is None else self._by_kind.get(kind)
        if adapter is None:
            wanted = "any network server" if kind is None else kind
            raise NoLnsError(f"no downlink credentials configured for {wanted}")
        return adapter
