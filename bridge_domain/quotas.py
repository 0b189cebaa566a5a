"""AWS IoT Core's quotas and limits, written once; the container, the Lambdas, the CLI and the stacks import them.

Values from the AWS IoT Core endpoints-and-quotas page (defaults; the adjustable ones can be raised per account).
"""

from __future__ import annotations

from typing import Final

# --- Data plane, per MQTT connection (not adjustable) ---
PUBLISHES_PER_SEC_PER_CONNECTION: Final = 100
"""Inbound and outbound publishes together; AWS discards the excess silently."""
BYTES_PER_SEC_PER_CONNECTION: Final = 512 * 1024
MAX_PAYLOAD_BYTES: Final = 128 * 1024
MAX_TOPIC_BYTES: Final = 256
MAX_TOPIC_SLASHES: Final = 7
MAX_CLIENT_ID_BYTES: Final = 128
MAX_SUBSCRIPTIONS_PER_CONNECTION: Final = 50
MAX_UNACKED_QOS1_PUBLISHES_PER_CONNECTION: Final = 100
CONNECTS_PER_SEC_PER_CLIENT_ID: Final = 1
MIN_KEEP_ALIVE_SECS: Final = 30
MAX_KEEP_ALIVE_SECS: Final = 1200
# Persistent sessions (MQTT 5 session expiry with clean start off): AWS keeps a disconnected session's
# subscriptions and QoS 1 messages for the account's persistent session expiry period, 1 hour by default,
# adjustable up to 7 days; a longer session expiry asked in CONNECT is held to that period. Stored messages are
# delivered at up to 10 per second when the session resumes.
DEFAULT_PERSISTENT_SESSION_EXPIRY_SECS: Final = 3600
MAX_PERSISTENT_SESSION_EXPIRY_SECS: Final = 7 * 24 * 3600
STORED_MESSAGES_PER_SEC_ON_RESUME: Final = 10

# --- Data plane, per account and region (defaults; regional and adjustable) ---
# A deployment states the figures it plans against (``accountPublishesPerSec``, ``accountConnectsPerSec`` in its
# ``deployment`` section): other workloads of the account share them, and some regions start lower.
DEFAULT_ACCOUNT_INBOUND_PUBLISHES_PER_SEC: Final = 20_000
DEFAULT_ACCOUNT_CONNECTS_PER_SEC: Final = 500

# --- Control plane, per account and region (adjustable) ---
CREATE_THING_PER_SEC: Final = 15.0
ATTACH_THING_PRINCIPAL_PER_SEC: Final = 15.0
DETACH_THING_PRINCIPAL_PER_SEC: Final = 15.0
DELETE_THING_PER_SEC: Final = 15.0
DESCRIBE_THING_PER_SEC: Final = 350.0
LIST_THINGS_PER_SEC: Final = 10.0
