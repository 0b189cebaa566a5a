"""The console's login: the admin token once, then a signed session cookie carrying the session's CSRF token.

The cookie is signed (itsdangerous) with a key derived from the admin token itself, so every bridge task behind the
load balancer accepts it without shared state, and rotating the token ends every session. The cookie holds no
secret: a random session id and the CSRF token every POST must echo (form field or ``X-CSRF-Token`` header).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

from itsdangerous import BadSignature, URLSafeTimedSerializer

from bridge_container.connections.auth import AdminAuth

COOKIE_NAME: Final = "bridge_console"
COOKIE_PATH: Final = "/console"
SESSION_MAX_AGE_SECS: Final = 8 * 3600  # a working day; then log in again
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "x-csrf-token"
_KEY_CONTEXT: Final = b"aws-iot-bridge console session v1"


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    csrf: str

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


class SessionKeeper:
    """Issues and reads session cookies; ``None`` for a missing, forged, expired or pre-rotation cookie."""

    def __init__(self, auth: AdminAuth, max_age_secs: int = SESSION_MAX_AGE_SECS) -> None:
        self.auth = auth
        self.max_age_secs = max_age_secs

    async def _serializer(self) -> URLSafeTimedSerializer | None:
        token = await self.auth.source.current()
        if token is None:
            return None
        key = hmac.new(token.encode(), _KEY_CONTEXT, hashlib.sha256).hexdigest()
        return URLSafeTimedSerializer(key, salt="console-session")

    async def login(self, presented: str | None) -> str:
        """The cookie value for a new session; raises AdminTokenError when the token is wrong."""
        await self.auth.check(presented)
        serializer = await self._serializer()
        if serializer is None:  # pragma: no cover - check() refused already
            raise RuntimeError("no admin token")
        return str(serializer.dumps({"sid": secrets.token_urlsafe(16), "csrf": secrets.token_urlsafe(24)}))

    async def read(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        serializer = await self._serializer()
        if serializer is None:
            return None
        try:
            data = serializer.loads(cookie, max_age=self.max_age_secs)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("sid"), str) or not isinstance(data.get("csrf"), str):
            return None
        return Session(data["sid"], data["csrf"])
