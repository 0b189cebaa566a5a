"""Exception hierarchy of the bridge service::

BridgeError
├── MqttError              an MQTT operation failed
│   ├── PublishError           a publish was not written to the broker
│   └── SubscribeError         a subscription was refused or timed out
├── PoolClosedError        the pool no longer takes messages (stopped or draining)
├── UnknownConnectionError no connection with that id runs in this process
└── RegistrationError      a registrar backend call failed as a whole (each DevEUI is retried later)
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error raised by the bridge service."""


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
