"""The ``deployment`` section of a configuration file: what ``cdk deploy`` needs beyond the connection itself.

The bridge and the Connections API ignore this section; only the CDK app reads it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from bridge_domain.models import DocumentModel
from bridge_domain.quotas import DEFAULT_ACCOUNT_CONNECTS_PER_SEC, DEFAULT_ACCOUNT_INBOUND_PUBLISHES_PER_SEC

ACM_CERTIFICATE_ARN_RE = re.compile(
    r"^arn:aws(?:-cn|-us-gov)?:acm:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):certificate/[0-9a-f-]{36}$"
)
SECRET_ARN_RE = re.compile(r"^arn:aws(?:-cn|-us-gov)?:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$")
# The retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)
MAX_INGRESS_CIDRS = 50  # a security group holds 60 inbound rules; leave room for the ones CDK adds
MAX_TASKS = 10


EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
MAX_ALARM_WINDOW_MINS = 1440  # CloudWatch evaluates at most a day of one-minute periods


class AlarmSettings(DocumentModel):
    """The alarms on the bridge's metrics and where they are sent; thresholds apply to the deployed connection."""

    email: str | None = Field(
        default=None,
        pattern=EMAIL_RE,
        max_length=254,
        description="Address subscribed to the alarm topic (AWS sends a confirmation mail first).",
    )
    low_uplinks_per_min: int = Field(
        default=1,
        ge=0,
        description="Low-rate alarm: fewer accepted uplinks per minute than this, over the whole window "
        "(0 turns it off).",
    )
    low_uplinks_window_mins: int = Field(
        default=30, ge=1, le=MAX_ALARM_WINDOW_MINS, description="How long the uplink rate stays low before alarming."
    )
    buffer_pressure_percent: int = Field(
        default=50,
        ge=1,
        le=100,
        description="Quota pressure: a task's uplink buffer fuller than this share of its size for 5 minutes.",
    )
    dead_letters: int = Field(
        default=1, ge=1, description="Dead letters of the status callback at or above which the alarm fires."
    )


class DeploymentSettings(DocumentModel):
    """How the stacks are built: the load balancer, scaling, data retention and optional extras."""

    https_certificate_arn: str | None = Field(
        default=None,
        description="ACM certificate of the load balancer's HTTPS listener (same region as the bridge).",
    )
    allow_plain_http: bool = Field(
        default=False,
        description="Serve plain HTTP on port 80. Needed without httpsCertificateArn; LNS tokens then cross the "
        "internet unencrypted.",
    )
    ingress_cidrs: tuple[str, ...] = Field(
        default=("0.0.0.0/0",),
        min_length=1,
        max_length=MAX_INGRESS_CIDRS,
        description="IPv4 ranges allowed to reach the load balancer (the network servers' egress addresses).",
    )
    min_tasks: int = Field(default=1, ge=1, le=MAX_TASKS, description="Bridge tasks always running.")
    max_tasks: int = Field(
        default=3,
        ge=1,
        le=MAX_TASKS,
        description="Upper bound of autoscaling; the synth refuses more than the account quotas below allow.",
    )
    uplinks_per_task_per_sec: int | None = Field(
        default=None,
        ge=1,
        description="Accepted uplinks per second and task that autoscaling aims at (default: 70 % of the "
        "connection's uplinkRatePerSec).",
    )
    buffer_depth_per_task: int | None = Field(
        default=None,
        ge=1,
        description="Uplinks waiting in a task's buffer that autoscaling aims at (default: one second of "
        "uplinkRatePerSec); a filling buffer means the task publishes at its rate limit.",
    )
    account_publishes_per_sec: int = Field(
        default=DEFAULT_ACCOUNT_INBOUND_PUBLISHES_PER_SEC,
        ge=1,
        description="Inbound publishes per second that the bridge may use of the account's AWS IoT quota in this "
        "region (the quota is regional and adjustable; other workloads of the account share it). The synth refuses "
        "maxTasks x poolSize x perClientRatePerSec above it.",
    )
    account_connects_per_sec: int = Field(
        default=DEFAULT_ACCOUNT_CONNECTS_PER_SEC,
        ge=1,
        description="Connect requests per second that the bridge may use of the account's AWS IoT quota in this "
        "region. The synth refuses maxTasks x poolSize above it: every client of every task may reconnect in the "
        "same second after an outage.",
    )
    network: Literal["publicSubnets", "natGateway"] = Field(
        default="publicSubnets",
        description="Where the tasks run: publicSubnets (a public address each, no inbound rule but the load "
        "balancer's; no NAT to pay) or natGateway (private subnets behind NAT gateways).",
    )
    nat_gateways: int = Field(
        default=1, ge=1, le=2, description="With network natGateway: 2 for one per availability zone."
    )
    log_retention_days: int = Field(default=90, description="Retention of every log group the stacks create.")
    destroy_removes_data: bool = Field(
        default=False,
        description="cdk destroy also deletes the DynamoDB tables and the access-log bucket (default: retained).",
    )
    lorawan_shadow: bool = Field(
        default=False,
        description="Topic rules keep a named shadow 'lorawan': last seen, RSSI, SNR, FCnt from each uplink; battery, "
        "margin and location from status and location events (when those are published).",
    )
    alarms: AlarmSettings = Field(
        default_factory=AlarmSettings, description="CloudWatch alarms and their notification address."
    )
    status_webhook_url: str | None = Field(
        default=None,
        pattern=r"^https://[^\s]+$",
        max_length=2048,
        description="HTTPS endpoint the status callback forwards device status to (e.g. the platform's).",
    )
    status_webhook_secret_arn: str | None = Field(
        default=None,
        pattern=SECRET_ARN_RE.pattern,
        description="Secrets Manager secret holding the HMAC key that signs each webhook call.",
    )

    @field_validator("https_certificate_arn")
    @classmethod
    def _check_certificate_arn(cls, value: str | None) -> str | None:
        if value is not None and ACM_CERTIFICATE_ARN_RE.match(value) is None:
            raise ValueError("must be an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)")
        return value

    @field_validator("ingress_cidrs")
    @classmethod
    def _check_cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            try:
                ipaddress.IPv4Network(cidr, strict=True)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IPv4 network such as 203.0.113.0/24") from None
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _check_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"must be one of CloudWatch Logs' periods: {sorted(LOG_RETENTION_DAYS)}")
        return value

    @model_validator(mode="after")
    def _check_together(self) -> DeploymentSettings:
        issues: list[InitErrorDetails] = []
        if self.https_certificate_arn is None and not self.allow_plain_http:
            issues.append(
                _issue("httpsCertificateArn", "required unless allowPlainHttp is true (plain HTTP on port 80)")
            )
        if self.status_webhook_url is not None and self.status_webhook_secret_arn is None:
            issues.append(_issue("statusWebhookSecretArn", "required with statusWebhookUrl: every call is signed"))
        if "nat_gateways" in self.model_fields_set and self.network != "natGateway":
            issues.append(_issue("natGateways", 'only with "network": "natGateway"'))
        if self.min_tasks > self.max_tasks:
            issues.append(_issue("minTasks", f"is larger than maxTasks ({self.max_tasks})"))
        if issues:
            raise ValidationError.from_exception_data(type(self).__name__, issues)
        return self

    @property
    def https_certificate_region(self) -> str | None:
        match = ACM_CERTIFICATE_ARN_RE.match(self.https_certificate_arn or "")
        return match.group("region") if match else None


def _issue(field: str, message: str) -> InitErrorDetails:
    return {"type": PydanticCustomError("invalid_combination", message), "loc": (field,), "input": None}
