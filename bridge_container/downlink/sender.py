"""The HTTP side of downlinks: one shared client, the retry policy and the rate limit, whatever the network server.

Each attempt, first or retry, takes a grant from the rate limiter, so the network server never sees more than
``downlinkRatePerSec`` requests a second. 5xx answers, timeouts and connection failures are retried with capped,
jittered exponential backoff; any 4xx (or other non-2xx) answer is final and never retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from bridge_container.downlink.exceptions import LnsRejectedError, LnsUnavailableError
from bridge_container.downlink.limiter import RateLimiter
from bridge_domain.lns import LnsKind

logger = logging.getLogger(__name__)

USER_AGENT = "aws-iot-bridge"
_MAX_ERROR_BODY_CHARS = 200


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` tries in all; before try n+1 wait between half and all of min(cap, base·2ⁿ⁻¹)."""

    max_attempts: int = 3
    base_delay_secs: float = 0.2
    max_delay_secs: float = 2.0

    def delay_secs(self, attempt: int, rng: random.Random) -> float:
        """Backoff after failed attempt number ``attempt`` (1-based); jitter keeps many tasks from retrying together."""
        ceiling = min(self.max_delay_secs, self.base_delay_secs * 2.0 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """Timeouts, connection reuse and retries of the client shared by every network-server adapter."""

    connect_timeout_secs: float = 3.0
    read_timeout_secs: float = 5.0
    write_timeout_secs: float = 5.0
    pool_timeout_secs: float = 5.0
    max_connections: int = 32
    max_keepalive_connections: int = 16
    keepalive_expiry_secs: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect_timeout_secs,
            read=self.read_timeout_secs,
            write=self.write_timeout_secs,
            pool=self.pool_timeout_secs,
        )

    def limits(self) -> httpx.Limits:
        return httpx.Limits(
            max_connections=self.max_connections,
            max_keepalive_connections=self.max_keepalive_connections,
            keepalive_expiry=self.keepalive_expiry_secs,
        )


def build_http_client(
    settings: HttpSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The one client of a bridge's downlinks: keep-alive connections reused across all network servers."""
    return httpx.AsyncClient(
        timeout=settings.timeout(),
        limits=settings.limits(),
        transport=transport,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,  # a redirect would resend credentials somewhere unconfigured
    )


@dataclass(frozen=True, slots=True)
class LnsCall:
    """One downlink for one network server; ``build`` makes a fresh request per attempt (ThingPark signs the time)."""

    lns: LnsKind
    build: Callable[[httpx.AsyncClient], httpx.Request]
    reference: str | None = None  # the id the network server echoes in its reports (ThingPark's CorrelationID)
    # Or read from the network server's answer (ChirpStack's queue-item id), when the server chooses the id.
    read_reference: Callable[[httpx.Response], str | None] | None = None


@dataclass(frozen=True, slots=True)
class LnsReceipt:
    """A network server's acceptance of a downlink."""

    lns: LnsKind
    status_code: int
    attempts: int
    reference: str | None = None


class LnsSender:
    """Sends :class:`LnsCall` s through the shared client, within the rate limit and the retry policy."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        limiter: RateLimiter,
        retry: RetryPolicy,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._retry = retry
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    async def send(self, call: LnsCall) -> LnsReceipt:
        """Deliver ``call``; raise :class:`LnsRejectedError` or :class:`LnsUnavailableError` when it cannot be."""
        last_problem = "no attempt made"
        last_status: int | None = None
        for attempt in range(1, self._retry.max_attempts + 1):
            await self._limiter.acquire()
            try:
                response = await self._client.send(call.build(self._client))
            except httpx.TimeoutException as exc:
                last_problem, last_status = f"timed out ({type(exc).__name__})", None
            except httpx.TransportError as exc:
                last_problem, last_status = f"connection failed ({type(exc).__name__})", None
            else:
                if response.is_success:
                    reference = call.reference if call.read_reference is None else call.read_reference(response)
                    return LnsReceipt(call.lns, response.status_code, attempt, reference)
                last_problem, last_status = _describe(response), response.status_code
                if not response.is_server_error:
                    raise LnsRejectedError(
                        f"{call.lns} answered {last_problem}", status_code=last_status, attempts=attempt
                    )
            if attempt < self._retry.max_attempts:
                delay = self._retry.delay_secs(attempt, self._rng)
                logger.debug("%s downlink attempt %d: %s; retrying in %.2fs", call.lns, attempt, last_problem, delay)
                await asyncio.sleep(delay)
        raise LnsUnavailableError(
            f"{call.lns} {last_problem} after {self._retry.max_attempts} attempts",
            status_code=last_status,
            attempts=self._retry.max_attempts,
        )


def _describe(response: httpx.Response) -> str:
    """``400 Bad Request: <start of the body>``, for the failure reason (network servers explain their 4xx)."""
    body = " ".join(response.text.split())[:_MAX_ERROR_BODY_CHARS]
    phrase = f"{response.status_code} {response.reason_phrase}".strip()
    return f"{phrase}: {body}" if body else phrase
