"""Connection states of a pool and of each of its MQTT clients (the seed platform's own set)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
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


# Why a client is in a state other than OPENED, when its last attempt says nothing more specific.
STATE_HINTS: dict[ConnectionState, str] = {
    ConnectionState.OPENING: "connecting",
    ConnectionState.AUTHENTICATING: "waiting for the broker to accept the connection",
    ConnectionState.CLOSED: "the connection dropped",
    ConnectionState.AUTHENTICATION_FAILED: "the broker refused the client certificate or the credentials",
    ConnectionState.UNREACHABLE: "the endpoint cannot be reached (DNS name, route, port or firewall)",
    ConnectionState.DEACTIVATED: "stopped",
}


@dataclass(frozen=True, slots=True)
class ClientReport:
    """One MQTT client's state and, unless it is OPENED, why."""

    client_id: str
    state: ConnectionState
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class StateReport:
    """A connection's state on this task, why it is not OPENED, and each client's own report."""

    state: ConnectionState
    reason: str | None = None
    clients: tuple[ClientReport, ...] = ()

    @classmethod
    def of_clients(cls, clients: Iterable[ClientReport]) -> StateReport:
        """The pool's report: its state by precedence; the reason of the first client in that state."""
        reports = tuple(clients)
        state = pool_state(report.state for report in reports)
        if state is ConnectionState.OPENED:
            return cls(state, None, reports)
        first = next((report for report in reports if report.state is state), None)
        if first is None:
            return cls(state, STATE_HINTS[state], reports)
        return cls(state, f"{first.client_id}: {first.reason or STATE_HINTS[state]}", reports)
