"""Errors of the Connections API, each mapped to one HTTP status by the router.

Under the service's :class:`~bridge_container.exceptions.BridgeError`::

ConnectionsError
├── ConnectionNotFoundError      404  no connection with that id
├── ConnectionConflictError      409  the write would break a uniqueness rule or lost a race
│   ├── DuplicateAccountError    409  another connection already serves that AWS account and region
│   └── StaleWriteError          409  the connection changed between read and write (conditional write failed)
├── AdminTokenError              401  no admin token, or the wrong one
├── MalformedBodyError           400  the body is not JSON
├── BodyTooLargeError            413  the body is larger than the API accepts
├── UnknownConnectorError        400  connectorId is not actility-aws-iot
├── InvalidConnectionError       422  the body breaks the connection model (every field path listed)
├── AccountLookupError           503  the AWS account behind the credentials could not be determined
└── StoreError                   500  the store or the secret vault failed (never carries a secret)
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge_container.exceptions import BridgeError
from bridge_domain.exceptions import FieldIssue


class ConnectionsError(BridgeError):
    """Base of every Connections API error."""


class ConnectionNotFoundError(ConnectionsError):
    def __init__(self, connection_id: str) -> None:
        self.connection_id = connection_id
        super().__init__(f"no connection {connection_id!r}")


class ConnectionConflictError(ConnectionsError):
    """A conditional write was refused."""


class DuplicateAccountError(ConnectionConflictError):
    def __init__(self, account_key: str, owner: str | None = None) -> None:
        self.account_key = account_key
        self.owner = owner
        held_by = f" (connection {owner!r})" if owner else ""
        super().__init__(f"a connection for AWS account and region {account_key} already exists{held_by}")


class StaleWriteError(ConnectionConflictError):
    def __init__(self, connection_id: str) -> None:
        self.connection_id = connection_id
        super().__init__(f"connection {connection_id!r} was changed or deleted concurrently; read it again and retry")


class AdminTokenError(ConnectionsError):
    """The request did not present the admin token (the message never includes what was presented)."""


class MalformedBodyError(ConnectionsError):
    """The body is not valid JSON."""


class BodyTooLargeError(ConnectionsError):
    """The body exceeds the size limit."""


class UnknownConnectorError(ConnectionsError):
    def __init__(self, connector_id: object) -> None:
        self.connector_id = connector_id
        super().__init__(f"unknown connectorId {connector_id!r:.80}; this bridge serves 'actility-aws-iot'")


class InvalidConnectionError(ConnectionsError):
    def __init__(self, issues: Sequence[FieldIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("; ".join(str(issue) for issue in self.issues))


class AccountLookupError(ConnectionsError):
    """STS could not say which account the credentials belong to."""


class StoreError(ConnectionsError):
    """The connection store or its secret vault failed."""
