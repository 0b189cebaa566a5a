"""SQL of the IoT topic rules: enebular's status plumbing, the optional LoRaWAN shadow and the Basic Ingest rule.

Every statement uses SQL version 2016-03-23. A rule reads one topic filter, so connection status comes from two
rules: shadow changes of ``reported.enebular.awsiot.connected`` and presence lifecycle events.
"""

from __future__ import annotations

from bridge_domain.connection import ConnectionConfiguration
from bridge_domain.events import EVENT_FIELD, EventKind
from bridge_domain.topics import DEV_EUI_FIELD

SQL_VERSION = "2016-03-23"
SHADOW_DOCUMENTS_TOPIC = "$aws/things/+/shadow/update/documents"
PRESENCE_TOPIC = "$aws/events/presence/+/+"
LORAWAN_SHADOW_NAME = "lorawan"
_CONNECTED = "state.reported.enebular.awsiot.connected"

# Agents write their shadow through a non-reserved topic; the rule republishes it to the reserved one.
SHADOW_UPDATE_SQL = "SELECT * FROM 'enebular/things/+/shadow/update'"
SHADOW_UPDATE_REPUBLISH_TOPIC = "$$aws/things/${topic(3)}/shadow/update"

# Whole shadow documents (the status callback reads previous and current), only those in which the agent's
# connected flag appears or changes.
STATUS_FROM_SHADOW_SQL = (
    f"SELECT *, topic(3) AS thingName FROM '{SHADOW_DOCUMENTS_TOPIC}' "
    f"WHERE isUndefined(current.{_CONNECTED}) = false "
    f"AND (isUndefined(previous.{_CONNECTED}) OR previous.{_CONNECTED} <> current.{_CONNECTED})"
)

DEVICE_STATE_SQL = f"SELECT *, topic(3) AS thingName FROM '{SHADOW_DOCUMENTS_TOPIC}'"


def status_from_presence_sql(client_id_prefix: str) -> str:
    """Lifecycle events as AWS IoT publishes them; the bridge's own MQTT clients (``<prefix>-...``) are left out."""
    return f"SELECT * FROM '{PRESENCE_TOPIC}' WHERE NOT startswith(clientId, '{client_id_prefix}-')"


def uplink_topic_filter(uplink_topic_pattern: str) -> str:
    """The filter matching every uplink topic: each level holding a placeholder becomes ``+``."""
    return "/".join("+" if "{" in level else level for level in uplink_topic_pattern.split("/"))


def dev_eui_level(uplink_topic_pattern: str) -> int:
    """The 1-based level of ``{DevEUI}`` (what ``topic(n)`` takes)."""
    return uplink_topic_pattern.split("/").index("{DevEUI}") + 1


def lorawan_shadow_sql(configuration: ConnectionConfiguration) -> str:
    """Radio metadata of each uplink, as a named-shadow update document (not the classic shadow: no SNS traffic)."""
    root = "DevEUI_uplink." if configuration.uplink_document == "thingpark" else ""
    reported = ", ".join(
        f"'{key}': {expression}"
        for key, expression in (
            ("lastSeen", "timestamp()"),
            ("rssi", f"{root}LrrRSSI"),
            ("snr", f"{root}LrrSNR"),
            ("fCnt", f"{root}FCntUp"),
            ("devAddr", f"{root}DevAddr"),
        )
    )
    topic_filter = uplink_topic_filter(configuration.uplink_topic_pattern)
    return f"SELECT {{'reported': {{{reported}}}}} AS state FROM '{topic_filter}'"


def lorawan_shadow_republish_topic(configuration: ConnectionConfiguration) -> str:
    level = dev_eui_level(configuration.uplink_topic_pattern)
    return f"$$aws/things/${{topic({level})}}/shadow/name/{LORAWAN_SHADOW_NAME}/update"


# What status and location events add to the named shadow (an attribute an event lacks is left out of the update;
# a battery of null, external power or no reading, removes the last one).
_EVENT_SHADOW_FIELDS = (
    "battery",
    "externalPower",
    "margin",
    "latitude",
    "longitude",
    "altitude",
    "accuracy",
    "locationSource",
)


def shadow_event_kinds(configuration: ConnectionConfiguration) -> tuple[EventKind, ...]:
    """The published event kinds the named shadow takes values from (none without an event topic)."""
    pattern = configuration.event_pattern
    if pattern is None or pattern.pattern.startswith("$"):  # a rule cannot read Basic Ingest topics
        return ()
    return tuple(kind for kind in (EventKind.STATUS, EventKind.LOCATION) if configuration.events.enabled(kind))


def _level(pattern: str, name: str) -> int:
    return pattern.split("/").index(f"{{{name}}}") + 1


def lorawan_event_shadow_sql(configuration: ConnectionConfiguration) -> str:
    """Battery, margin and location of status and location events, as a named-shadow update document.

    One rule reads the event topics of every kind (``{Event}`` is a ``+`` level) and keeps the two that carry
    device state; the thing is named by the ``{DevEUI}`` level, as the bridge registers it.
    """
    pattern = configuration.event_pattern
    if pattern is None:
        raise ValueError("no event topic pattern")
    event_level = _level(pattern.pattern, EVENT_FIELD)
    reported = ", ".join(f"'{name}': {name}" for name in _EVENT_SHADOW_FIELDS)
    kinds = " OR ".join(f"topic({event_level}) = '{kind.value}'" for kind in shadow_event_kinds(configuration))
    return f"SELECT {{'reported': {{{reported}}}}} AS state FROM '{pattern.subscription_filter()}' WHERE {kinds}"


def lorawan_event_shadow_republish_topic(configuration: ConnectionConfiguration) -> str:
    pattern = configuration.event_pattern
    if pattern is None:
        raise ValueError("no event topic pattern")
    level = _level(pattern.pattern, DEV_EUI_FIELD)
    return f"$$aws/things/${{topic({level})}}/shadow/name/{LORAWAN_SHADOW_NAME}/update"


def basic_ingest_sql(configuration: ConnectionConfiguration) -> str:
    """Every uplink the bridge sends to the Basic Ingest rule, as published.

    AWS IoT invokes the rule named in ``$aws/rules/<rule>/`` whatever its FROM clause says; the filter of the
    topic after that prefix is kept so that the rule reads like the topics it takes, and ``topic(n)`` counts from
    there (``topic(3)`` is the DevEUI of ``tpx/things/{DevEUI}/uplink``).
    """
    return f"SELECT * FROM '{uplink_topic_filter(configuration.uplink_topic_pattern)}'"
