"""Signed webhook delivery: POST JSON with an HMAC-SHA256 over timestamp and body, retried on 5xx and 429.

Headers::

    X-Bridge-Timestamp: <unix seconds>
    X-Bridge-Signature: sha256=<hex HMAC-SHA256(key, "<timestamp>." + body)>

The receiver recomputes the HMAC over the raw body bytes, compares in constant time and rejects timestamps outside
its tolerance (a few minutes), which stops replays. Each attempt is signed afresh with its own timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from aws_lambda_powertools import Logger

from lambdas.status_callback.exceptions import WebhookDeliveryError

logger = Logger(child=True)

TIMESTAMP_HEADER = "X-Bridge-Timestamp"
SIGNATURE_HEADER = "X-Bridge-Signature"
SIGNATURE_SCHEME = "sha256="


def signature(key: bytes, timestamp: str, body: bytes) -> str:
    """The header value: ``sha256=`` and the hex HMAC-SHA256 of ``"<timestamp>." + body``."""
    digest = hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_SCHEME + digest


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Where to send and how hard to try; 5xx, 429 and network errors are retried, other 4xx are final."""

    url: str
    timeout_secs: float = 5.0
    max_attempts: int = 3
    backoff_base_secs: float = 0.5


class WebhookSender:
    """Sends one change at a time; the key comes from a callable so a rotated secret is picked up."""

    def __init__(
        self,
        settings: WebhookSettings,
        key: Callable[[], bytes],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._key = key
        self._clock = clock
        self._sleep = sleep

    def _post(self, body: bytes) -> int:
        timestamp = str(int(self._clock()))
        request = urllib.request.Request(  # noqa: S310 - the environment model allows only https (http to loopback)
            self._settings.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: signature(self._key(), timestamp, body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self._settings.timeout_secs) as response:  # noqa: S310
                status: int = response.status
                return status
        except urllib.error.HTTPError as exc:
            return exc.code

    def send(self, body: bytes) -> int:
        """POST ``body``; return the 2xx/3xx status or raise :class:`WebhookDeliveryError`."""
        attempts = self._settings.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                status = self._post(body)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                problem = f"unreachable ({exc})"
            else:
                if status < 400:
                    return status
                if status < 500 and status != HTTPStatus.TOO_MANY_REQUESTS:
                    raise WebhookDeliveryError(f"webhook refused the change with HTTP {status}")
                problem = f"HTTP {status}"
            if attempt < attempts:
                delay_secs = self._settings.backoff_base_secs * 2 ** (attempt - 1)
                logger.warning("webhook %s; retrying in %.1f s (attempt %d)", problem, delay_secs, attempt)
                self._sleep(delay_secs)
        raise WebhookDeliveryError(f"webhook failed after {attempts} attempts: {problem}")
