"""Settings of the LoRaWAN network servers a connection talks to: ingress authentication and downlinks."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field

from bridge_domain.models import DocumentModel
from bridge_domain.secrets import SecretInput

LnsKind = Literal["thingpark", "chirpstack", "tts"]


class ThingParkLns(DocumentModel):
    """ThingPark: uplinks POSTed as ``{"DevEUI_uplink": ...}``; downlinks through the AS downlink API."""

    kind: Literal["thingpark"] = "thingpark"
    as_id: str = Field(
        default="aws-iot-bridge", min_length=1, max_length=64, description="Application server ID (AS_ID)."
    )
    as_key: SecretInput | None = Field(
        default=None,
        description="AS key (32 hex digits): verifies uplink Tokens and signs downlinks. Without it uplinks are not "
        "authenticated and downlinks cannot be signed.",
    )
    downlink_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://thingparkenterprise.eu.actility.com/thingpark/lrc/rest/downlink"),
        description="ThingPark application-server downlink endpoint.",
    )
    max_time_drift_secs: int = Field(default=60, ge=1, le=3600, description="Largest accepted age of an uplink's Time.")


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
