"""What the Connections API needs from the bridge that hosts the connections: start, restart and stop one."""

from __future__ import annotations

from typing import Protocol

from bridge_container.states import StateReport
from bridge_domain.connection import Connection


class ConnectionHost(Protocol):
    """Implemented by ``BridgeService``: one runtime (pool, pipeline, registrar, subscriber) per connection."""

    async def add_connection(self, connection_id: str, connection: Connection) -> None: ...

    async def replace_connection(self, connection_id: str, connection: Connection) -> None:
        """Restart with the new configuration without losing buffered uplinks."""
        ...

    async def remove_connection(self, connection_id: str) -> None:
        """Drain, then stop."""
        ...

    def connection_report(self, connection_id: str) -> StateReport:
        """The connection's state here and why it is not OPENED; raises KeyError if it does not run here."""
        ...
