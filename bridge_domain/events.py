"""Device events beyond uplinks (joins, status, locations, logs, ...): which a connection publishes, and where.

Each kind is switched on or off per connection (``configuration.events``). Their topic comes from one pattern with
``{DevEUI}`` and ``{Event}`` (the kind's name). Without ``events.topicPattern`` it is derived from the uplink
pattern: its last level, when it is a literal, is replaced by ``{Event}`` (``tpx/things/{DevEUI}/uplink`` →
``tpx/things/{DevEUI}/join``); otherwise ``/{Event}`` is appended (see :func:`derive_event_pattern` for uplink
patterns with other placeholders). Every topic a pattern can give is checked
against AWS IoT's topic rules when the configuration is validated.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pydantic import Field

from bridge_domain.exceptions import TopicError
from bridge_domain.models import DocumentModel
from bridge_domain.topics import DEV_EUI_FIELD, TopicPattern

EVENT_FIELD: Final = "Event"
EVENT_TOPIC_FIELDS: Final = frozenset({DEV_EUI_FIELD, EVENT_FIELD})


class EventKind(StrEnum):
    """An event's name: the ``{Event}`` level of its topic and the ``event`` field of its document."""

    JOIN = "join"  # the device joined (ChirpStack join, TTS join_accept, ThingPark notification of type join)
    STATUS = "status"  # battery and link margin (ChirpStack status, ThingPark notification devstatusans)
    LOCATION = "location"  # a resolved position (ChirpStack location, TTS location_solved, ThingPark DevEUI_location)
    LOG = "log"  # the network server's device log (ChirpStack log that is not about a downlink)
    SERVICE = "service"  # data from a TTS application package (service_data)
    NORMALIZED = "normalized"  # TTS's normalized payload (uplink_normalized)


class EventSettings(DocumentModel):
    """``configuration.events``: which events are published, and where."""

    join: bool = Field(default=True, description="Publish joins (each also registers the thing).")
    status: bool = Field(default=True, description="Publish device status: battery and link margin.")
    location: bool = Field(default=True, description="Publish resolved locations.")
    log: bool = Field(default=False, description="Publish the network server's device logs (ChirpStack).")
    service: bool = Field(default=False, description="Publish TTS application-package data (service_data).")
    normalized: bool = Field(default=False, description="Publish TTS normalized payloads (uplink_normalized).")
    topic_pattern: str | None = Field(
        default=None,
        description="Topic of the events, with {DevEUI} and {Event}; derived from uplinkTopicPattern when absent "
        "(its last literal level replaced by {Event}).",
    )

    def enabled(self, kind: EventKind) -> bool:
        return bool(getattr(self, kind.value))


def derive_event_pattern(uplink_topic_pattern: str) -> str:
    """The uplink pattern with its last literal level replaced by ``{Event}`` (or ``/{Event}`` appended).

    When the uplink pattern has placeholders an event does not carry (``{FPort}``, ``{ApplicationId}``, ...), the
    levels before the first of them are kept and ``{DevEUI}/{Event}`` follows: ``lora/{ApplicationId}/{DevEUI}/up``
    gives ``lora/{DevEUI}/{Event}``.
    """
    levels = uplink_topic_pattern.split("/")
    foreign = [index for index, level in enumerate(levels) if "{" in level and level != f"{{{DEV_EUI_FIELD}}}"]
    if foreign:
        kept = levels[: foreign[0]]
        device = [] if f"{{{DEV_EUI_FIELD}}}" in kept else [f"{{{DEV_EUI_FIELD}}}"]
        return "/".join([*kept, *device, f"{{{EVENT_FIELD}}}"])
    if len(levels) > 1 and "{" not in levels[-1]:
        return "/".join([*levels[:-1], f"{{{EVENT_FIELD}}}"])
    return f"{uplink_topic_pattern}/{{{EVENT_FIELD}}}"


def parse_event_pattern(pattern: str) -> TopicPattern:
    """Parse and check an event topic pattern; raise :class:`TopicError` naming the rule it breaks."""
    parsed = TopicPattern.parse(pattern, allowed=EVENT_TOPIC_FIELDS)
    if EVENT_FIELD not in parsed.names:
        raise TopicError("pattern must contain {Event}")
    parsed.subscription_filter()  # each placeholder fills a whole level, so that rules can read it with topic(n)
    for kind in EventKind:  # the longest topic each kind gives must satisfy AWS IoT's rules
        parsed.render({DEV_EUI_FIELD: "0" * 16, EVENT_FIELD: kind.value})
    return parsed


def event_pattern(settings: EventSettings, uplink_topic_pattern: str) -> TopicPattern:
    """The connection's event topic pattern: explicit, or derived from the uplink pattern."""
    return parse_event_pattern(settings.topic_pattern or derive_event_pattern(uplink_topic_pattern))
