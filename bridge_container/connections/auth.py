"""The admin token that guards the Connections API: from Secrets Manager when deployed, else the environment.

Precedence: ``BRIDGE_ADMIN_TOKEN_SECRET`` (a Secrets Manager id or ARN; the secret is the token, or JSON with a
``token`` key) over ``BRIDGE_ADMIN_TOKEN``. With neither, every request is refused: the API is closed, not open.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from bridge_container.connections.exceptions import AdminTokenError
from bridge_container.settings import ConnectionsSettings, EnvVar

logger = logging.getLogger(__name__)

SECRET_REFRESH_SECS = 300.0  # a rotated token is picked up within five minutes
MIN_TOKEN_CHARS = 16


class TokenSource(Protocol):
    async def current(self) -> str | None: ...


class StaticToken:
    """A token fixed at start (the environment variable), or none."""

    def __init__(self, token: str | None) -> None:
        self._token = token or None

    async def current(self) -> str | None:
        return self._token


class SecretsManagerToken:
    """The token held in a Secrets Manager secret, cached for :data:`SECRET_REFRESH_SECS`."""

    def __init__(
        self, secret_id: str, client: Callable[[], Any], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.secret_id = secret_id
        self._client = client
        self._clock = clock
        self._cached: str | None = None
        self._fetched_at = float("-inf")

    async def current(self) -> str | None:
        if self._cached is None or self._clock() - self._fetched_at > SECRET_REFRESH_SECS:
            try:
                response = await asyncio.to_thread(lambda: self._client().get_secret_value(SecretId=self.secret_id))
            except (ClientError, BotoCoreError):
                # Keep serving with the cached token if there is one; refuse everything if there is none.
                logger.exception("could not read the admin token secret %s", self.secret_id)
                return self._cached
            self._cached = _token_of(str(response.get("SecretString", "")))
            self._fetched_at = self._clock()
        return self._cached


def _token_of(secret_string: str) -> str | None:
    try:
        parsed = json.loads(secret_string)
    except ValueError:
        return secret_string or None
    if isinstance(parsed, dict) and isinstance(parsed.get("token"), str):
        return str(parsed["token"]) or None
    return secret_string or None


def token_source(settings: ConnectionsSettings, secretsmanager: Callable[[], Any]) -> TokenSource:
    """The admin token's secret when one is named, else the token itself (or none: every request refused)."""
    if settings.admin_token_secret:
        return SecretsManagerToken(settings.admin_token_secret, secretsmanager)
    token = settings.admin_token.get_secret_value() if settings.admin_token is not None else None
    if not token:
        logger.warning(
            "no %s or %s: the Connections API refuses every request", EnvVar.ADMIN_TOKEN, EnvVar.ADMIN_TOKEN_SECRET
        )
    elif len(token) < MIN_TOKEN_CHARS:
        logger.warning("%s is shorter than %d characters; use a long random token", EnvVar.ADMIN_TOKEN, MIN_TOKEN_CHARS)
    return StaticToken(token)


class AdminAuth:
    """Checks a presented bearer token against the admin token in constant time."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    async def check(self, presented: str | None) -> None:
        expected = await self.source.current()
        if expected is None:
            raise AdminTokenError("the Connections API is closed: no admin token is configured")
        # compare_digest on bytes: time does not depend on where the first difference is
        if presented is None or not hmac.compare_digest(presented.encode(), expected.encode()):
            raise AdminTokenError("missing or wrong admin token (Authorization: Bearer <token>)")
