"""The self-test's settings, errors and constants, and the record of what a run made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from bridge_domain.naming import ResourceNames

SECRET_ENV: Final = "BRIDGE_SELFTEST_SECRET"  # noqa: S105 - a variable name, not a secret
ENDPOINTS_FILE: Final = "endpoints.json"  # written by make run into its state directory
LNS_SECRETS_FILE: Final = "lns-secrets.json"
LOCAL_CREDENTIAL: Final = "local"  # moto and the local stand-in accept any credentials
DEFAULT_TIMEOUT_SECS: Final = 20.0
DEFAULT_UPLINK_TOPIC: Final = "tpx/things/{DevEUI}/uplink"
DEFAULT_DOWNLINK_TOPIC: Final = "tpx/things/{DevEUI}/downlink"
WSS_PORT: Final = 443
KEEP_ALIVE_SECS: Final = 60
POLL_SECS: Final = 0.2
HTTP_TIMEOUT_SECS: Final = 10.0
SQS_WAIT_SECS: Final = 2  # long polling, short enough to honour the step's timeout
SELFTEST_FPORT: Final = 223  # the highest application port: no sensor payload decoder is expected on it
DEV_EUI_PREFIX: Final = "5E1F7E57"  # "selftest" in hex-ish, so a leftover thing is recognisable
THINGPARK_CUSTOMER_ID: Final = "100000000"

Lns = Literal["thingpark", "chirpstack", "tts"]


class SelfTestError(Exception):
    """A step failed: what happened, and what to check."""

    def __init__(self, problem: str, check: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.check = check


class UsageError(ValueError):
    """The command line or the local state directory does not say enough."""


@dataclass(frozen=True, slots=True, repr=False)
class Target:
    """The deployment under test; ``secret`` (the AS key or ingress token) never appears in a repr or output."""

    ingress_url: str  # the uplink routes are <ingress_url>/uplinks/<lns>
    lns: Lns
    secret: str | None
    iot_endpoint: str
    region: str
    uplink_topic: str = DEFAULT_UPLINK_TOPIC
    downlink_topic: str = DEFAULT_DOWNLINK_TOPIC
    status_topic: str = field(default_factory=lambda: ResourceNames().status_push_topic)  # a name or an ARN
    as_id: str = "aws-iot-bridge"
    application_id: str | None = None
    dev_eui: str | None = None
    iot_port: int = WSS_PORT
    ca_pem: bytes | None = None  # the local stand-in's CA; AWS IoT's is in the system store
    aws_endpoint_url: str | None = None  # moto, for --local
    profile: str | None = None
    local: bool = False
    timeout_secs: float = DEFAULT_TIMEOUT_SECS

    def __repr__(self) -> str:
        return f"Target(ingress_url={self.ingress_url!r}, lns={self.lns!r}, iot_endpoint={self.iot_endpoint!r})"


@dataclass(slots=True)
class Made:
    """What the self-test created, for the cleanup."""

    things: list[str] = field(default_factory=list)  # things that did not exist before the run
    shadow: str | None = None
    queue_url: str | None = None
    subscription_arn: str | None = None
