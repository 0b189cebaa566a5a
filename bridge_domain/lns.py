"""Settings of the LoRaWAN network servers a connection talks to: ingress authentication and downlinks."""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator

from bridge_domain.models import DocumentModel
from bridge_domain.secrets import SecretInput, SecretsManagerRef

LnsKind = Literal["thingpark", "chirpstack", "tts"]
# ThingPark's Tunnel Interface Authentication Key: 128 bits written as 32 hex digits, hashed in lower case.
_AS_KEY_RE: Final = re.compile(r"[0-9a-fA-F]{32}")
_AsKey = SecretStr | SecretsManagerRef


class ThingParkLns(DocumentModel):
    """ThingPark: uplinks POSTed as ``{"DevEUI_uplink": ...}``; downlinks through the AS downlink API."""

    kind: Literal["thingpark"] = "thingpark"
    as_id: str = Field(
        default="aws-iot-bridge", min_length=1, max_length=64, description="Application server ID (AS_ID)."
    )
    as_key: SecretInput | None = Field(
        default=None,
        description="AS key (ThingPark's Tunnel Interface Authentication Key, 128 bits as 32 hex digits, any case; "
        "used in lower case): verifies the Token of uplinks and downlink reports and signs downlinks. Without it "
        "ThingPark messages are not authenticated and downlinks cannot be signed.",
    )
    downlink_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://thingparkenterprise.eu.actility.com/thingpark/lrc/rest/downlink"),
        description="ThingPark application-server downlink endpoint.",
    )
    max_time_drift_secs: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="Largest accepted distance between a message's Time and the bridge's clock; a signed message is "
        "accepted once within it.",
    )

    @field_validator("as_key")
    @classmethod
    def _as_key_is_128_bit_hex(cls, value: _AsKey | None) -> _AsKey | None:
        # A Secrets Manager reference is checked the same way once fetched (the connection is validated again).
        if not isinstance(value, SecretStr):
            return value
        key = value.get_secret_value()
        if _AS_KEY_RE.fullmatch(key) is None:
            raise ValueError("must be 32 hexadecimal digits (ThingPark's 128-bit AS key)")
        return SecretStr(key.lower())


class ChirpStackLns(DocumentModel):
    """ChirpStack v4: HTTP integration ``up`` events; downlinks enqueued on the device queue."""

    kind: Literal["chirpstack"] = "chirpstack"
    ingress_token: SecretInput = Field(description="Bearer token the HTTP integration sends (Authorization header).")
    api_url: AnyHttpUrl = Field(description="ChirpStack REST API base URL, e.g. https://chirpstack.example.com/api.")
    api_token: SecretInput | None = Field(default=None, description="API token for downlink enqueue.")


class TtsLns(DocumentModel):
    """The Things Stack v3: webhook ``uplink_message``; downlinks pushed through the webhook downlink API."""

    kind: Literal["tts"] = "tts"
    ingress_token: SecretInput = Field(description="Value of the webhook's Authorization header.")
    api_url: AnyHttpUrl = Field(description="TTS cluster URL, e.g. https://eu1.cloud.thethings.network.")
    application_id: str = Field(min_length=1, max_length=36)
    webhook_id: str = Field(default="aws-iot-bridge", min_length=1, max_length=36)
    api_key: SecretInput | None = Field(default=None, description="API key allowed to push downlinks.")
    device_id_prefix: str = Field(
        default="eui-",
        pattern=r"^[a-z0-9-]{0,20}$",
        description="TTS addresses devices by ID: downlinks go to <deviceIdPrefix><lower-case DevEUI>.",
    )


LnsSettings = Annotated[ThingParkLns | ChirpStackLns | TtsLns, Field(discriminator="kind")]
