"""Names shared by the CDK app, the bridge and the Lambdas: things, client IDs and AWS resource names."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from bridge_domain.deveui import normalise_dev_eui

MAX_CLIENT_ID_BYTES = 128
# A thing attribute that marks the things the bridge created, so teardown deletes only those.
CREATED_BY_ATTRIBUTE = "createdBy"
CREATED_BY_VALUE = "aws-iot-bridge"
DEV_EUI_ATTRIBUTE = "devEUI"

RESOURCE_SUFFIX_RE = re.compile(r"[A-Za-z0-9_]{0,24}")
CLIENT_ID_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def thing_name(dev_eui: str) -> str:
    """The IoT thing that stands for a device is named after its normalised DevEUI."""
    return normalise_dev_eui(dev_eui)


def client_id(prefix: str, task_id: str, slot: int) -> str:
    """``<prefix>-<task>-<slot>``: unique per task and pool slot, at most 128 bytes (AWS IoT's limit).

    A task id too long to fit is replaced by a 16-hex-digit digest so the ID stays unique and stable.
    """
    task = re.sub(r"[^A-Za-z0-9_]", "", task_id) or "task"
    candidate = f"{prefix}-{task}-{slot}"
    if len(candidate.encode()) <= MAX_CLIENT_ID_BYTES:
        return candidate
    digest = hashlib.sha256(task_id.encode()).hexdigest()[:16]
    return f"{prefix}-{digest}-{slot}"


def suffix_for_region(region: str) -> str:
    """The documented suffix for a second deployment in the same account: ``eu-west-1`` → ``_eu_west_1``."""
    return "_" + region.replace("-", "_")


@dataclass(frozen=True, slots=True)
class ResourceNames:
    """Names of the account-visible resources; the enebular names by default, plus an optional suffix.

    IAM role names are global per account, so a second region in the same account sets a suffix
    (``suffix_for_region``); IoT rule names allow only ``[A-Za-z0-9_]``, which the suffix respects.
    """

    suffix: str = ""

    def __post_init__(self) -> None:
        if RESOURCE_SUFFIX_RE.fullmatch(self.suffix) is None:
            raise ValueError("resource name suffix must be at most 24 characters of [A-Za-z0-9_]")

    @property
    def status_push_role(self) -> str:
        return f"enebular_status_push_role{self.suffix}"

    @property
    def shadow_update_rule(self) -> str:
        return f"enebular_shadow_update{self.suffix}"

    @property
    def status_push_rule(self) -> str:
        return f"enebular_status_push_rule{self.suffix}"

    @property
    def devicestate_push_rule(self) -> str:
        return f"enebular_devicestate_push_rule{self.suffix}"

    @property
    def presence_push_rule(self) -> str:
        """Lifecycle (presence) events to the status topic: a rule reads one topic filter, the shadow rule another."""
        return f"enebular_presence_push_rule{self.suffix}"

    def stack_name(self, unit: str) -> str:
        """CloudFormation stack of one deployable unit: ``AwsIotBridge-Iot``, ``AwsIotBridge-eu-west-1-Iot``."""
        middle = self.suffix.strip("_").replace("_", "-")
        return "-".join(part for part in ("AwsIotBridge", middle, unit) if part)

    @property
    def lorawan_shadow_rule(self) -> str:
        return f"aws_iot_bridge_lorawan_shadow{self.suffix}"

    @property
    def lorawan_event_shadow_rule(self) -> str:
        return f"aws_iot_bridge_lorawan_event_shadow{self.suffix}"

    @property
    def status_push_topic(self) -> str:
        return f"enebular_status_push_sns{self.suffix}"

    @property
    def devicestate_push_topic(self) -> str:
        return f"enebular_devicestate_push_sns{self.suffix}"
