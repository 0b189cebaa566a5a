"""Connection states of a pool and of each of its MQTT clients (the seed platform's own set)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class ConnectionState(StrEnum):
    """Where a client, or a pool as a whole, stands."""

    OPENING = "OPENING"  # connecting (TCP, TLS, MQTT CONNECT) or waiting to reconnect
    OPENED = "OPENED"  # connected: publishes flow
    CLOSED = "CLOSED"  # the connection dropped or was refused for a reason other than credentials
    AUTHENTICATING = "AUTHENTICATING"  # signing the websocket upgrade or waiting for CONNACK
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"  # certificate, CA or credentials refused
    UNREACHABLE = "UNREACHABLE"  # no route, refused or timed out at the network level
    DEACTIVATED = "DEACTIVATED"  # stopped on purpose (removed connection, shutdown)


# A pool is as good as its best client: one OPENED client means uplinks flow.
_POOL_PRECEDENCE = (
    ConnectionState.OPENED,
    ConnectionState.AUTHENTICATING,
    ConnectionState.OPENING,
    ConnectionState.CLOSED,
    ConnectionState.UNREACHABLE,
    ConnectionState.AUTHENTICATION_FAILED,
    ConnectionState.DEACTIVATED,
)


def pool_state(client_states: Iterable[ConnectionState]) -> ConnectionState:
    """The state of a pool from its clients' states (DEACTIVATED when it has none)."""
    present = set(client_states)
    return next((state for state in _POOL_PRECEDENCE if state in present), ConnectionState.DEACTIVATED)
