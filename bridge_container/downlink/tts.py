"""The Things Stack v3: push on the device's downlink queue through the webhook downlink API, with an API key."""

from __future__ import annotations

import base64
from typing import Any, Literal

import httpx

from bridge_container.downlink.documents import DownlinkRequest
from bridge_container.downlink.sender import LnsCall
from bridge_domain.lns import TtsLns
from bridge_domain.secrets import reveal

CORRELATION_PREFIX = "aws-iot-bridge:"


class TtsAdapter:
    """``POST {apiUrl}/api/v3/as/applications/{app}/webhooks/{webhook}/devices/{device}/down/push``.

    The Things Stack addresses devices by device ID, not DevEUI: the ID is ``deviceIdPrefix`` + the lower-case
    DevEUI (``eui-70b3d57ed0000001``, the console's default).
    """

    def __init__(self, settings: TtsLns) -> None:
        api_key = reveal(settings.api_key)
        if api_key is None:
            raise ValueError("The Things Stack downlinks need an apiKey")
        base_url = str(settings.api_url).rstrip("/")
        self._push_url = (
            f"{base_url}/api/v3/as/applications/{settings.application_id}/webhooks/{settings.webhook_id}/devices"
        )
        self._device_id_prefix = settings.device_id_prefix
        self._headers = {"Authorization": f"Bearer {api_key}"}

    @property
    def kind(self) -> Literal["tts"]:
        return "tts"

    def device_id(self, dev_eui: str) -> str:
        return f"{self._device_id_prefix}{dev_eui.lower()}"

    def prepare(self, request: DownlinkRequest) -> LnsCall:
        downlink: dict[str, Any] = {
            "f_port": request.f_port,
            "frm_payload": base64.b64encode(request.payload).decode(),
            "confirmed": request.confirmed,
            "priority": "NORMAL",
        }
        if request.correlation_id is not None:
            downlink["correlation_ids"] = [CORRELATION_PREFIX + request.correlation_id]
        url = f"{self._push_url}/{self.device_id(request.dev_eui)}/down/push"
        body = {"downlinks": [downlink]}

        def build(client: httpx.AsyncClient) -> httpx.Request:
            return client.build_request("POST", url, json=body, headers=self._headers)

        return LnsCall(lns=self.kind, build=build)
