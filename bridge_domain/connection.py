"""The connection model: the body of POST /connections, the CDK app's input and the bridge's configuration.

One model for all three, so a field means the same thing everywhere. Field names are the seed's camelCase
in JSON (``uplinkTopicPattern``) and snake_case in Python (``uplink_topic_pattern``).
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any, Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    ModelWrapValidatorHandler,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from bridge_domain import pem
from bridge_domain.budget import PoolBudget, plan_budget
from bridge_domain.deployment import DeploymentSettings
from bridge_domain.events import EventKind, EventSettings, event_pattern
from bridge_domain.exceptions import TopicError
from bridge_domain.lns import LnsSettings, ThingParkLns
from bridge_domain.models import DocumentModel
from bridge_domain.naming import CLIENT_ID_PREFIX_RE, RESOURCE_SUFFIX_RE, ResourceNames
from bridge_domain.quotas import (
    DEFAULT_PERSISTENT_SESSION_EXPIRY_SECS,
    MAX_KEEP_ALIVE_SECS,
    MAX_PERSISTENT_SESSION_EXPIRY_SECS,
    MIN_KEEP_ALIVE_SECS,
    PUBLISHES_PER_SEC_PER_CONNECTION,
)
from bridge_domain.secrets import SecretInput, SecretsManagerRef
from bridge_domain.topics import (
    BASIC_INGEST_PREFIX,
    DOWNLINK_TOPIC_FIELDS,
    FEEDBACK_STATUSES,
    UPLINK_TOPIC_FIELDS,
    TopicPattern,
)

CONNECTOR_ID = "actility-aws-iot"
MAX_POOL_SIZE = 10  # the seed's pool: at most 10 MQTT clients
MAX_PER_CLIENT_RATE_PER_SEC = PUBLISHES_PER_SEC_PER_CONNECTION  # AWS IoT discards the excess
MAX_DOWNLINK_RATE_PER_SEC = 100  # the seed's downlink limit
# uplinkTimeValidity: up to a day. Longer than the buffer ever holds uplinks at any configured rate.
MAX_UPLINK_TIME_VALIDITY_SECS = 86_400
DEFAULT_BASIC_INGEST_RULE = "iot_bridge_uplinks"
SSL_PORT = 8883
WSS_PORT = 443

REGION_RE = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$"
ACCOUNT_PREFIX_RE = r"^[a-z0-9]{6,40}(-ats)?$"
CERTIFICATE_ARN_RE = re.compile(
    r"^arn:aws(?:-cn|-us-gov|-iso|-iso-b)?:iot:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):cert/(?P<id>[0-9a-f]{64})$"
)
CERTIFICATE_ID_RE = re.compile(r"^[0-9a-f]{64}$")
_CERTIFICATE_FIELDS = ("certificate", "privateKey", "certificateId")


class BrokerOverride(DocumentModel):
    """Where to connect instead of the derived endpoint: a local broker, or the endpoint discovered at deploy time."""

    host: str = Field(min_length=1, max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535, description="Defaults to 8883 (SSL) or 443 (WSS).")
    ca_certificate: str | None = Field(
        default=None, description="PEM of a private CA to trust instead of the system store (local broker only)."
    )
    wss_path: str = Field(default="/mqtt", description="Path of the websocket endpoint.")
    use_sigv4: bool = Field(default=True, description="Sign WSS upgrades with SigV4 (false for a local broker).")


class ConnectionConfiguration(DocumentModel):
    """``configuration`` of a connection: the seed's fields first, then what this deployment adds."""

    # --- the seed's fields -------------------------------------------------------------------------------------
    description: str = Field(default="", max_length=512, description="Free text.")
    uplink_topic_pattern: str = Field(
        default="tpx/things/{DevEUI}/uplink",
        description="Topic each uplink is published on; placeholders: "
        + ", ".join(sorted(UPLINK_TOPIC_FIELDS))
        + "; ThingPark keywords: {DevEUI_uplink.CustomerData.name|'none'} (a path into the LNS document, "
        "[n] for array elements, '|' for fallbacks, a quoted constant last).",
    )
    downlink_topic_pattern: str = Field(
        default="tpx/things/{DevEUI}/downlink",
        description="Topic downlinks are taken from; {DevEUI} must fill one whole level.",
    )
    device_type: str = Field(
        pattern=r"^[a-zA-Z0-9:_-]{1,128}$",
        description="AWS IoT thing type of every registered device (seed: Device Type).",
    )
    region: str = Field(description="AWS region of the IoT Core endpoint, e.g. eu-central-1.")
    account_prefix: str | None = Field(
        default=None,
        description="First label of the IoT data endpoint (<accountPrefix>.iot.<region>.amazonaws.com). "
        "Not needed when the deployment discovers the endpoint.",
    )
    access_key_id: str | None = Field(
        default=None,
        pattern=r"^[A-Z0-9]{16,128}$",
        description="Access key for another account (cross-account only; in its own account the bridge uses its role).",
    )
    secret_access_key: SecretInput | None = Field(default=None, description="Secret of accessKeyId.")
    certificate_id: str | None = Field(
        default=None, description="Certificate ARN (arn:aws:iot:<region>:<account>:cert/<id>) or 64-hex certificate id."
    )
    certificate: SecretInput | None = Field(default=None, description="PEM of the bridge's client certificate.")
    private_key: SecretInput | None = Field(default=None, description="PEM of the certificate's private key.")
    protocol: Literal["SSL", "WSS"] = Field(
        default="SSL",
        description="SSL: MQTT over TLS 1.2 with the certificate on 8883. WSS: MQTT over websockets on 443.",
    )
    downlink_port: int = Field(default=1, ge=1, le=223, description="LoRaWAN FPort used for downlinks without one.")
    downlink_enabled: bool = Field(default=True, description="Subscribe to the downlink topic and forward to the LNS.")
    # --- what this deployment adds -----------------------------------------------------------------------------
    create_certificate: bool = Field(
        default=False,
        description="The deployment creates the bridge certificate; SSL then needs no certificate fields.",
    )
    broker: BrokerOverride | None = Field(default=None, description="Connect here instead of the derived endpoint.")
    lns: tuple[LnsSettings, ...] = Field(
        default=(ThingParkLns(),), min_length=1, max_length=3, description="Network servers, at most one of each kind."
    )
    uplink_document: Literal["thingpark", "flat", "decoded"] = Field(
        default="thingpark",
        description="thingpark: the document as ThingPark sends it; flat: without the DevEUI_uplink root; "
        "decoded: only the decoded payload.",
    )
    uplink_delivery: Literal["topic", "basicIngest"] = Field(
        default="topic",
        description="topic: publish each uplink on its topic (subscribers and rules see it); basicIngest: publish "
        "to $aws/rules/<basicIngestRule>/<topic>, straight to that IoT rule (no messaging charge, no subscriber).",
    )
    basic_ingest_rule: str = Field(
        default=DEFAULT_BASIC_INGEST_RULE,
        pattern=r"^[A-Za-z0-9_]{1,128}$",
        description="The IoT rule uplinks go to with uplinkDelivery basicIngest; the deployment creates it.",
    )
    pool_size: int = Field(default=MAX_POOL_SIZE, ge=1, le=MAX_POOL_SIZE, description="MQTT clients per bridge task.")
    uplink_rate_per_sec: int = Field(default=1000, ge=1, le=MAX_POOL_SIZE * MAX_PER_CLIENT_RATE_PER_SEC)
    per_client_rate_per_sec: int = Field(default=MAX_PER_CLIENT_RATE_PER_SEC, ge=1, le=MAX_PER_CLIENT_RATE_PER_SEC)
    downlink_rate_per_sec: int = Field(default=MAX_DOWNLINK_RATE_PER_SEC, ge=1, le=MAX_DOWNLINK_RATE_PER_SEC)
    buffer_size: int = Field(default=20_000, ge=1, le=1_000_000, description="Uplinks waiting for the rate limiter.")
    uplink_qos: Literal[0, 1] = Field(
        default=0,
        description="MQTT QoS of uplinks: 0 (at most once, as the seed) or 1 (at least once: published on PUBACK, "
        "published again after a reconnect with the same MessageId).",
    )
    delivery_ack: Literal["accepted", "published"] = Field(
        default="accepted",
        description="When the LNS gets its 2xx: 'accepted' (in the bridge's buffer) or 'published' (after the "
        "broker's PUBACK; needs uplinkQos 1).",
    )
    uplink_time_validity: int | None = Field(
        default=None,
        ge=1,
        le=MAX_UPLINK_TIME_VALIDITY_SECS,
        description="Seconds an uplink may wait in the bridge before it is published; older ones are dropped and "
        "counted (reason 'stale'), not published late. Unset: no limit.",
    )
    downlink_buffer_size: int = Field(
        default=1_000, ge=1, le=100_000, description="Downlinks waiting for the rate limiter; beyond it they fail."
    )
    keep_alive_secs: int = Field(
        default=60,
        ge=MIN_KEEP_ALIVE_SECS,
        le=MAX_KEEP_ALIVE_SECS,
        description="MQTT keepalive (AWS IoT accepts 30-1200).",
    )
    downlink_session_expiry_secs: int = Field(
        default=DEFAULT_PERSISTENT_SESSION_EXPIRY_SECS,
        ge=0,
        le=MAX_PERSISTENT_SESSION_EXPIRY_SECS,
        description="How long the broker keeps the downlink subscribers' sessions (and the QoS 1 downlinks "
        "published meanwhile) after they disconnect; 0: clean sessions. AWS IoT holds it to the account's persistent "
        "session expiry period (1 hour by default, at most 7 days).",
    )
    client_id_prefix: str = Field(default="iot-bridge", pattern=CLIENT_ID_PREFIX_RE.pattern)
    shared_subscription_group: str = Field(default="iot-bridge", pattern=r"^[A-Za-z0-9_-]{1,128}$")
    register_things: bool = Field(default=True, description="Create a thing for the first uplink of each DevEUI.")
    batch_ingress_token: SecretInput | None = Field(
        default=None,
        description="Bearer token of POST .../uplinks/batch (high-rate producers); without one the batch endpoint "
        "answers 401.",
    )
    resource_name_suffix: str = Field(
        default="", pattern=RESOURCE_SUFFIX_RE.pattern, description="Appended to the enebular resource names."
    )
    events: EventSettings = Field(
        default_factory=EventSettings,
        description="Device events beyond uplinks (joins, status, locations, logs): which are published, and where.",
    )

    @field_validator("uplink_topic_pattern")
    @classmethod
    def _check_uplink_pattern(cls, value: str) -> str:
        try:
            TopicPattern.parse(value, allowed=UPLINK_TOPIC_FIELDS, keywords=True)
        except TopicError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("downlink_topic_pattern")
    @classmethod
    def _check_downlink_pattern(cls, value: str) -> str:
        try:
            pattern = TopicPattern.parse(value, allowed=DOWNLINK_TOPIC_FIELDS)
            pattern.subscription_filter()
            for status in FEEDBACK_STATUSES:
                pattern.child(status)
        except TopicError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str) -> str:
        if re.fullmatch(REGION_RE, value) is None:
            raise ValueError("must be an AWS region code such as eu-central-1 or us-west-2")
        return value

    @field_validator("account_prefix")
    @classmethod
    def _check_account_prefix(cls, value: str | None) -> str | None:
        if value is not None and re.fullmatch(ACCOUNT_PREFIX_RE, value) is None:
            raise ValueError("must be the lower-case alphanumeric first label of the endpoint, e.g. a2plmnutiyt-ats")
        return value

    @field_validator("certificate_id")
    @classmethod
    def _check_certificate_id(cls, value: str | None) -> str | None:
        if value is not None and not (CERTIFICATE_ARN_RE.match(value) or CERTIFICATE_ID_RE.match(value)):
            raise ValueError("must be a certificate ARN (arn:aws:iot:<region>:<account>:cert/<64 hex>) or a 64-hex id")
        return value

    @field_validator("certificate")
    @classmethod
    def _check_certificate(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, SecretsManagerRef):
            pem.load_certificate(value.get_secret_value())
        return value

    @field_validator("private_key")
    @classmethod
    def _check_private_key(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, SecretsManagerRef):
            pem.load_private_key(value.get_secret_value())
        return value

    @field_validator("lns")
    @classmethod
    def _check_lns_kinds(cls, value: tuple[LnsSettings, ...]) -> tuple[LnsSettings, ...]:
        kinds = [entry.kind for entry in value]
        if len(set(kinds)) != len(kinds):
            raise ValueError("at most one entry per LNS kind")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _validate_together(cls, data: Any, handler: ModelWrapValidatorHandler[ConnectionConfiguration]) -> Any:
        """Report field errors and cross-field errors together, each with its own field path."""
        issues: list[InitErrorDetails] = []
        model: ConnectionConfiguration | None = None
        try:
            model = handler(data)
        except ValidationError as exc:
            issues.extend(_reraisable(exc))
        if isinstance(data, dict):
            issues.extend(_missing_certificate_fields(data))
        if model is not None:
            issues.extend(model._cross_field_issues())
        if issues:
            raise ValidationError.from_exception_data(cls.__name__, issues)
        return model

    def _cross_field_issues(self) -> list[InitErrorDetails]:
        issues: list[InitErrorDetails] = []

        def add(field: str, message: str, value: object) -> None:
            issues.append(_issue((field,), message, value))

        if self.uplink_rate_per_sec > self.pool_size * self.per_client_rate_per_sec:
            add(
                "uplinkRatePerSec",
                f"exceeds poolSize x perClientRatePerSec = {self.pool_size * self.per_client_rate_per_sec}/s "
                "(AWS IoT discards publishes beyond the per-connection limit)",
                self.uplink_rate_per_sec,
            )
        if self.delivery_ack == "published" and self.uplink_qos != 1:
            add("deliveryAck", "'published' needs uplinkQos 1: QoS 0 publishes are not acknowledged", self.delivery_ack)
        if (self.access_key_id is None) != (self.secret_access_key is None):
            field = "secretAccessKey" if self.secret_access_key is None else "accessKeyId"
            add(field, "accessKeyId and secretAccessKey go together", None)
        if self.certificate_arn_region not in (None, self.region):
            add("certificateId", f"certificate is in region {self.certificate_arn_region}, not {self.region}", None)
        cert, key = self.certificate, self.private_key
        if (
            isinstance(cert, SecretStr)
            and isinstance(key, SecretStr)
            and not pem.key_matches_certificate(key.get_secret_value(), cert.get_secret_value())
        ):
            add("privateKey", "private key does not belong to the certificate", None)
        if self.uplink_delivery == "basicIngest" and self.uplink_topic_pattern.startswith("$"):
            add(
                "uplinkTopicPattern",
                "with uplinkDelivery basicIngest the pattern is the topic after $aws/rules/<basicIngestRule>/ and "
                "cannot start with '$'",
                self.uplink_topic_pattern,
            )
        uplink = self.uplink_pattern
        sample = uplink.render(dict.fromkeys(uplink.names, "0000000000000000"))
        if self.uplink_delivery == "topic" and self.downlink_pattern.parse_topic(sample) is not None:
            add("downlinkTopicPattern", "uplink topics would match the downlink filter (a publish loop)", None)
        issues.extend(self._event_issues())
        return issues

    def _event_issues(self) -> list[InitErrorDetails]:
        """An explicit event pattern must be valid; a derived one that is not only switches events off (a warning)."""
        loc = ("events", "topicPattern")
        try:
            pattern = event_pattern(self.events, self.uplink_topic_pattern)
        except TopicError as exc:
            return [] if self.events.topic_pattern is None else [_issue(loc, str(exc), None)]
        for kind in EventKind:
            if self.downlink_pattern.parse_topic(pattern.render({"DevEUI": "0" * 16, "Event": kind.value})):
                return [_issue(loc, f"{kind.value} events would match the downlink filter (a publish loop)", None)]
        return []

    # --- derived values, computed in one place -----------------------------------------------------------------
    @cached_property
    def uplink_pattern(self) -> TopicPattern:
        return TopicPattern.parse(self.uplink_topic_pattern, allowed=UPLINK_TOPIC_FIELDS, keywords=True)

    @property
    def uplink_topic_prefix(self) -> str:
        """What goes before each rendered uplink topic: the Basic Ingest prefix, or nothing."""
        if self.uplink_delivery == "basicIngest":
            return f"{BASIC_INGEST_PREFIX}{self.basic_ingest_rule}/"
        return ""

    @cached_property
    def event_pattern(self) -> TopicPattern | None:
        """Topic pattern of the device events (``{DevEUI}``, ``{Event}``); None when none can be derived."""
        try:
            return event_pattern(self.events, self.uplink_topic_pattern)
        except TopicError:
            return None

    @cached_property
    def downlink_pattern(self) -> TopicPattern:
        return TopicPattern.parse(self.downlink_topic_pattern, allowed=DOWNLINK_TOPIC_FIELDS)

    @property
    def derived_endpoint(self) -> str | None:
        """``<accountPrefix>.iot.<region>.amazonaws.com`` (``.com.cn`` in China), or None without a prefix."""
        if self.account_prefix is None:
            return None
        domain = "amazonaws.com.cn" if self.region.startswith("cn-") else "amazonaws.com"
        return f"{self.account_prefix}.iot.{self.region}.{domain}"

    @property
    def endpoint(self) -> str | None:
        """The broker host the bridge connects to: the override if any, else the derived endpoint."""
        return self.broker.host if self.broker is not None else self.derived_endpoint

    @property
    def port(self) -> int:
        if self.broker is not None and self.broker.port is not None:
            return self.broker.port
        return SSL_PORT if self.protocol == "SSL" else WSS_PORT

    @property
    def certificate_arn_region(self) -> str | None:
        match = CERTIFICATE_ARN_RE.match(self.certificate_id or "")
        return match.group("region") if match else None

    @property
    def account_id(self) -> str | None:
        """The AWS account, when the certificate ARN names it."""
        match = CERTIFICATE_ARN_RE.match(self.certificate_id or "")
        return match.group("account") if match else None

    @property
    def resource_names(self) -> ResourceNames:
        return ResourceNames(self.resource_name_suffix)

    def lns_of_kind(self, kind: str) -> LnsSettings | None:
        return next((entry for entry in self.lns if entry.kind == kind), None)

    def warnings(self) -> list[str]:
        """Problems that do not stop the bridge but that an operator should know about."""
        found: list[str] = []
        if self.account_prefix is not None and not self.account_prefix.endswith("-ats"):
            found.append(
                "configuration.accountPrefix does not end in '-ats': legacy endpoints use deprecated Verisign CAs; "
                "use the ATS endpoint (iot:Data-ATS)"
            )
        thingpark = self.lns_of_kind("thingpark")
        if isinstance(thingpark, ThingParkLns) and thingpark.as_key is None:
            found.append("configuration.lns: ThingPark has no asKey, so ThingPark uplink tokens are not verified")
        if self.event_pattern is None:
            found.append(
                "configuration.events: no event topic can be derived from uplinkTopicPattern under AWS IoT's topic "
                "rules, so no event is published; set events.topicPattern"
            )
        found.extend(self.budget.warnings())
        return found

    @property
    def budget(self) -> PoolBudget:
        """How the pool shares AWS IoT's publishes per connection between uplinks and downlinks."""
        return plan_budget(
            self.pool_size,
            self.per_client_rate_per_sec,
            self.downlink_rate_per_sec if self.downlink_enabled else None,
        )


class Connection(DocumentModel):
    """The body of POST /connections and PUT /connections/{id}, and a deployment's configuration file."""

    connector_id: Literal["actility-aws-iot"] = Field(description="Must be actility-aws-iot.")
    name: str = Field(min_length=1, max_length=128, description="Application name.")
    configuration: ConnectionConfiguration
    deployment: DeploymentSettings | None = Field(
        default=None,
        exclude_if=lambda value: value is None,  # connections of the API never show an empty section
        description="Only in a deployment's configuration file: read by the CDK app, ignored by the bridge.",
    )


def _issue(loc: tuple[str | int, ...], message: str, value: object) -> InitErrorDetails:
    return {"type": PydanticCustomError("invalid_combination", message), "loc": loc, "input": value}


def _reraisable(exc: ValidationError) -> list[InitErrorDetails]:
    """Field errors of ``exc`` in a form ``ValidationError.from_exception_data`` accepts again."""
    details: list[InitErrorDetails] = []
    for error in exc.errors(include_url=False):
        details.append(
            {"type": PydanticCustomError(error["type"], error["msg"]), "loc": error["loc"], "input": error.get("input")}
        )
    return details


def _missing_certificate_fields(data: dict[str, Any]) -> list[InitErrorDetails]:
    """SSL needs certificate, private key and certificate ARN unless the deployment creates the certificate."""
    protocol = data.get("protocol", "SSL")
    creates = data.get("createCertificate", data.get("create_certificate", False))
    if protocol != "SSL" or creates is True:
        return []
    snake = {"certificate": "certificate", "privateKey": "private_key", "certificateId": "certificate_id"}
    return [
        _issue((field,), "required when protocol is SSL (or set createCertificate)", None)
        for field in _CERTIFICATE_FIELDS
        if data.get(field, data.get(snake[field])) in (None, "")
    ]


__all__ = ["CONNECTOR_ID", "AnyHttpUrl", "BrokerOverride", "Connection", "ConnectionConfiguration"]
