"""Exception hierarchy of the bridge service; every error it raises derives from :class:`BridgeError`::

BridgeError
├── SettingsError                the container's environment is invalid (every problem, each naming its variable)
├── MqttError                    an MQTT operation failed
│   ├── PublishError                 a publish was not written to the broker
│   └── SubscribeError               a subscription was refused or timed out
├── PoolClosedError              the pool no longer takes messages (stopped or draining)
├── UnknownConnectionError       no connection with that id runs in this process
├── RegistrationError            a registrar backend call failed as a whole (each DevEUI is retried later)
├── IngressError                 ingress/exceptions.py: a refused uplink request (its HTTP status and reason)
│   ├── BadUplinkError               400
│   │   └── InvalidFieldError            400, naming the field
│   ├── UnauthorizedError            401
│   ├── ReplayedError                403
│   ├── PayloadTooLargeError         413
│   ├── UnsupportedMediaTypeError    415
│   └── ReplayCacheFullError         503
├── DownlinkError                downlink/exceptions.py: a downlink not sent (``reason`` is the feedback code)
│   ├── DocumentError                the message on the downlink topic is not a downlink we can send
│   ├── NoLnsError                   no network server of the requested kind is configured for downlinks
│   └── LnsError                     the network server did not take the downlink
│       ├── LnsRejectedError             4xx or another final answer: never retried
│       └── LnsUnavailableError          5xx, timeout or connection failure, still failing after the retries
└── ConnectionsError             connections/exceptions.py: a Connections API error (mapped to one HTTP status)
    ├── ConnectionNotFoundError      404
    ├── ConnectionConflictError      409
    │   ├── DuplicateAccountError        409
    │   └── StaleWriteError              409
    ├── AdminTokenError              401
    ├── MalformedBodyError           400
    ├── BodyTooLargeError            413
    ├── UnknownConnectorError        400
    ├── InvalidConnectionError       422
    ├── AccountLookupError           503
    └── StoreError                   500

Each component's module documents its own part of the tree in detail."""

from __future__ import annotations

from collections.abc import Sequence

from bridge_domain.exceptions import FieldIssue


class BridgeError(Exception):
    """Base of every error raised by the bridge service."""


class SettingsError(BridgeError):
    """The container's environment is invalid; ``issues`` lists every problem found, each located by variable."""

    def __init__(self, issues: Sequence[FieldIssue]) -> None:
        self.issues = tuple(issues)
        # One line: the process logs it once and exits.
        super().__init__(f"invalid environment ({len(self.issues)} problem(s)): " + "; ".join(map(str, self.issues)))


class MqttError(BridgeError):
    """An MQTT operation failed."""


class PublishError(MqttError):
    """A publish was not written to the broker (disconnected, refused, or timed out)."""


class SubscribeError(MqttError):
    """A subscription was refused by the broker or did not complete in time."""


class PoolClosedError(BridgeError):
    """The pool no longer takes messages."""


class UnknownConnectionError(BridgeError, KeyError):
    """No connection with that id runs in this process."""


class RegistrationError(BridgeError):
    """A registrar backend call failed as a whole."""
