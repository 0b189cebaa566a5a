"""What the bridge may do on AWS IoT Core, derived from its topic patterns (no ``*`` resource anywhere).

The same grants become the IoT policy attached to the bridge certificate (SSL) and the task role's statements
(WSS with SigV4). Resources are the part after ``arn:<partition>:iot:<region>:<account>:``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bridge_domain.connection import ConnectionConfiguration
from bridge_domain.events import EVENT_FIELD, EventKind
from bridge_domain.topics import FEEDBACK_STATUSES, shared_subscription

# A placeholder or a keyword expression (``{DevEUI_uplink.CustomerData.name|DevEUI}``): one level's value at most.
_PLACEHOLDER_RE = re.compile(r"\{[^{}]*\}")


@dataclass(frozen=True, slots=True)
class IotGrant:
    """One IoT action on a set of resources."""

    action: str
    resources: tuple[str, ...]


def topic_resource(pattern: str) -> str:
    """A topic pattern as a policy resource: each ``{...}`` becomes ``*`` (values never contain ``/``)."""
    return "topic/" + _PLACEHOLDER_RE.sub("*", pattern)


def bridge_grants(configuration: ConnectionConfiguration) -> tuple[IotGrant, ...]:
    """Connect with the client-ID prefix, publish uplinks, enabled events and feedback, take downlinks."""
    connect = IotGrant("iot:Connect", (f"client/{configuration.client_id_prefix}-*",))
    publish = [topic_resource(configuration.uplink_topic_prefix + configuration.uplink_topic_pattern)]
    events = configuration.event_pattern
    if events is not None:
        publish.extend(
            topic_resource(events.pattern.replace(f"{{{EVENT_FIELD}}}", kind.value))
            for kind in EventKind
            if configuration.events.enabled(kind)
        )
    if not configuration.downlink_enabled:
        return (connect, IotGrant("iot:Publish", tuple(publish)))
    downlink = configuration.downlink_pattern
    publish.extend(topic_resource(downlink.child(status).pattern) for status in FEEDBACK_STATUSES)
    topic_filter = downlink.subscription_filter()
    shared = shared_subscription(configuration.shared_subscription_group, topic_filter)
    return (
        connect,
        IotGrant("iot:Publish", tuple(publish)),
        IotGrant("iot:Subscribe", (f"topicfilter/{topic_filter}", f"topicfilter/{shared}")),
        IotGrant("iot:Receive", (topic_resource(downlink.pattern),)),
    )
