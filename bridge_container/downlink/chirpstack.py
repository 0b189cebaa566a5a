"""ChirpStack v4: enqueue on the device queue through the REST API, authenticated with an API token."""

from __future__ import annotations

import base64
import json
from typing import Literal

import httpx

from bridge_container.downlink.correlation import CorrelationIds
from bridge_container.downlink.documents import DownlinkRequest
from bridge_container.downlink.sender import LnsCall
from bridge_domain.lns import ChirpStackLns
from bridge_domain.secrets import reveal


class ChirpStackAdapter:
    """``POST {apiUrl}/devices/{devEui}/queue`` with ``{"queueItem": {...}}`` (ChirpStack writes EUIs lower case).

    ChirpStack answers with the queue item's ``id``, which its txack, ack and log events carry: it is the
    downlink's reference, remembered with the caller's correlation id in ``correlation_ids``.
    """

    def __init__(self, settings: ChirpStackLns, *, correlation_ids: CorrelationIds | None = None) -> None:
        self._correlation_ids = correlation_ids
        token = reveal(settings.api_token)
        if token is None:
            raise ValueError("ChirpStack downlinks need an apiToken")
        self._base_url = str(settings.api_url).rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}

    @property
    def kind(self) -> Literal["chirpstack"]:
        return "chirpstack"

    def prepare(self, request: DownlinkRequest) -> LnsCall:
        dev_eui = request.dev_eui.lower()
        item: dict[str, object] = {
            "devEui": dev_eui,
            "fPort": request.f_port,
            "confirmed": request.confirmed,
            "data": base64.b64encode(request.payload).decode(),
        }
        if request.queue_item_id is not None:
            item["id"] = request.queue_item_id  # the application's queue-item id, so both sides name it alike
        body = {"queueItem": item}
        url = f"{self._base_url}/devices/{dev_eui}/queue"

        def build(client: httpx.AsyncClient) -> httpx.Request:
            return client.build_request("POST", url, json=body, headers=self._headers)

        def read_reference(response: httpx.Response) -> str | None:
            try:
                answer = response.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                return None
            queue_item_id = answer.get("id") if isinstance(answer, dict) else None
            if not isinstance(queue_item_id, str) or not queue_item_id:
                return None
            if self._correlation_ids is not None and request.correlation_id is not None:
                self._correlation_ids.remember(queue_item_id, request.correlation_id)
            return queue_item_id

        return LnsCall(lns=self.kind, build=build, read_reference=read_reference)
