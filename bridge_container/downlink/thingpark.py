"""ThingPark's application-server downlink API: a POST whose query string carries the downlink and its Token.

Token = SHA-256 hex digest of the query string before ``&Token`` with its values unencoded (the Time's ``+``
stays ``+``), followed by the AS key. On the wire every value is percent-encoded (``+`` → ``%2B``).
Without an AS key the request carries neither Time nor Token (ThingPark accepts that only when the AS profile
does not require authentication).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import quote, urlencode

import httpx

from bridge_container.downlink.correlation import CorrelationIds
from bridge_container.downlink.documents import DownlinkRequest
from bridge_container.downlink.sender import LnsCall
from bridge_domain.lns import ThingParkLns
from bridge_domain.secrets import reveal


def thingpark_time() -> str:
    """Now as ThingPark writes times: ``2016-08-01T09:06:06.000+00:00``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def signed_query(parameters: list[tuple[str, str]], as_key: str) -> str:
    """The encoded query string with ``Token`` appended, signed over the unencoded ``parameters``."""
    unencoded = "&".join(f"{name}={value}" for name, value in parameters)
    token = hashlib.sha256((unencoded + as_key).encode()).hexdigest()
    return urlencode([*parameters, ("Token", token)], quote_via=quote)


class ThingParkAdapter:
    """Downlinks through ThingPark's ``/thingpark/lrc/rest/downlink`` (or the configured ``downlinkUrl``)."""

    def __init__(
        self,
        settings: ThingParkLns,
        *,
        correlation_ids: CorrelationIds | None = None,
        timestamp: Callable[[], str] = thingpark_time,
    ) -> None:
        self._url = str(settings.downlink_url)
        self._as_id = settings.as_id
        self._as_key = reveal(settings.as_key)
        self.correlation_ids = correlation_ids or CorrelationIds()
        self._timestamp = timestamp

    @property
    def kind(self) -> Literal["thingpark"]:
        return "thingpark"

    @property
    def signs_requests(self) -> bool:
        return self._as_key is not None

    def parameters(self, request: DownlinkRequest, correlation_id: str, time: str | None) -> list[tuple[str, str]]:
        """The query parameters, in the order they are signed."""
        parameters = [("DevEUI", request.dev_eui), ("FPort", str(request.f_port)), ("Payload", request.payload.hex())]
        if request.confirmed:
            parameters.append(("Confirmed", "1"))
        parameters.append(("CorrelationID", correlation_id))
        parameters.append(("AS_ID", self._as_id))
        if time is not None:
            parameters.append(("Time", time))
        return parameters

    def prepare(self, request: DownlinkRequest) -> LnsCall:
        correlation_id = self.correlation_ids.assign(request.correlation_id)

        def build(client: httpx.AsyncClient) -> httpx.Request:
            if self._as_key is None:
                query = urlencode(self.parameters(request, correlation_id, None), quote_via=quote)
            else:
                query = signed_query(self.parameters(request, correlation_id, self._timestamp()), self._as_key)
            return client.build_request("POST", f"{self._url}?{query}")

        return LnsCall(lns=self.kind, build=build, reference=correlation_id)
