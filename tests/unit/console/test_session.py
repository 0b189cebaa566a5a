"""Console sessions: only the admin token opens one; forged, expired and pre-rotation cookies are refused."""

from __future__ import annotations

import pytest

from bridge_container.connections.auth import AdminAuth, StaticToken
from bridge_container.connections.exceptions import AdminTokenError
from bridge_container.console.session import SessionKeeper

TOKEN = "console-admin-token-0123456789"


class RotatingToken:
    def __init__(self, token: str | None) -> None:
        self.token = token

    async def current(self) -> str | None:
        return self.token


async def test_the_admin_token_opens_a_session_whose_cookie_reads_back() -> None:
    keeper = SessionKeeper(AdminAuth(StaticToken(TOKEN)))
    cookie = await keeper.login(TOKEN)
    session = await keeper.read(cookie)
    assert session is not None
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches("other")
    assert not session.csrf_matches(None)
    assert TOKEN not in cookie


async def test_a_wrong_token_opens_no_session() -> None:
    keeper = SessionKeeper(AdminAuth(StaticToken(TOKEN)))
    with pytest.raises(AdminTokenError):
        await keeper.login("wrong")
    with pytest.raises(AdminTokenError):
        await SessionKeeper(AdminAuth(StaticToken(None))).login("")


async def test_a_forged_or_tampered_cookie_is_refused() -> None:
    keeper = SessionKeeper(AdminAuth(StaticToken(TOKEN)))
    cookie = await keeper.login(TOKEN)
    assert await keeper.read(cookie[:-2] + ("A" if cookie[-1] != "A" else "B") + cookie[-1]) is None
    other = SessionKeeper(AdminAuth(StaticToken(TOKEN + "-other")))
    assert await keeper.read(await other.login(TOKEN + "-other")) is None
    assert await keeper.read(None) is None


async def test_rotating_the_admin_token_ends_every_session() -> None:
    source = RotatingToken(TOKEN)
    keeper = SessionKeeper(AdminAuth(source))
    cookie = await keeper.login(TOKEN)
    source.token = TOKEN + "-rotated"
    assert await keeper.read(cookie) is None
    source.token = None
    assert await keeper.read(cookie) is None


async def test_an_expired_cookie_is_refused() -> None:
    keeper = SessionKeeper(AdminAuth(StaticToken(TOKEN)), max_age_secs=-1)
    assert await keeper.read(await keeper.login(TOKEN)) is None
