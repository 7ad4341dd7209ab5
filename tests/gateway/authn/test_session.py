"""Session cookies: sealing, and what happens when renewal is refused or fails."""

from __future__ import annotations

import asyncio
import time

import pytest
from starlette.requests import Request

from gateway.authn.browser import BrowserLogin, SessionEnded
from gateway.authn.oauth import IdentityProviderError
from gateway.authn.principal import Authenticated, Principal
from gateway.authn.session import CookieSealer, InvalidCookie, Session
from gateway.config import BrowserLoginConfig, GatewayConfig
from gateway.errors import GatewayError

ISSUER = "https://idp.example"
PUBLIC = "http://127.0.0.1:8080"


def make_session(*, expires_in: float, refresh_token: str | None = "rt") -> Session:  # noqa: S107
    now = time.time()
    return Session(
        caller=Authenticated(Principal("sub-1", "alice", groups=("ds",)), ISSUER, "id", "web"),
        expires_at=now + expires_in,
        issued_at=now + expires_in - 3600,
        signed_in_at=now,
        refresh_token=refresh_token,
    )


def browser_login(refresh_error: IdentityProviderError | None) -> BrowserLogin:
    config = GatewayConfig(upstream_url="http://u", identity_secret=b"k" * 32, public_url=PUBLIC)
    login = BrowserLogin(config, BrowserLoginConfig(ISSUER, "web"), None, None)

    async def refresh(_token: str):
        raise refresh_error

    login.oidc.refresh = refresh
    return login


def request_with(login: BrowserLogin, session: Session, method: str = "GET") -> Request:
    cookie = login._session_cookie(session).split(";")[0]
    headers = [(b"cookie", cookie.encode()), (b"origin", PUBLIC.encode())]
    return Request({"type": "http", "method": method, "path": "/x", "headers": headers})


def test_a_sealed_session_opens_unchanged_and_reveals_nothing():
    sealer = CookieSealer(b"k" * 32)
    session = make_session(expires_in=600, refresh_token="secret-refresh-token")
    value = sealer.seal_session(session)
    assert "secret-refresh-token" not in value and "alice" not in value
    assert sealer.open_session(value, max_age=60) == session
    with pytest.raises(InvalidCookie):
        CookieSealer(b"x" * 32).open_session(value, max_age=60)
    with pytest.raises(InvalidCookie):
        sealer.open_session(value, max_age=-1)  # older than the absolute lifetime


def test_a_refused_refresh_ends_the_session():
    login = browser_login(IdentityProviderError("refused", error="invalid_grant"))
    request = request_with(login, make_session(expires_in=10))
    with pytest.raises(SessionEnded) as ended:
        asyncio.run(login.authenticate(request))
    assert "Max-Age=0" in ended.value.headers["Set-Cookie"]


def test_an_unreachable_idp_keeps_a_session_that_has_not_expired_yet():
    login = browser_login(IdentityProviderError("connection refused"))
    outcome = asyncio.run(login.authenticate(request_with(login, make_session(expires_in=10))))
    assert outcome.caller.principal.username == "alice"
    assert outcome.set_cookie is None
    with pytest.raises(SessionEnded):
        asyncio.run(login.authenticate(request_with(login, make_session(expires_in=-1))))


def test_a_session_without_refresh_token_lasts_until_its_token_expires():
    login = browser_login(IdentityProviderError("unused"))
    alive = make_session(expires_in=10, refresh_token=None)
    assert asyncio.run(login.authenticate(request_with(login, alive))).caller == alive.caller
    with pytest.raises(SessionEnded):
        expired = make_session(expires_in=-1, refresh_token=None)
        asyncio.run(login.authenticate(request_with(login, expired)))


def test_the_origin_is_checked_before_anything_else():
    login = browser_login(IdentityProviderError("unused"))
    request = request_with(login, make_session(expires_in=600), method="POST")
    request.scope["headers"] = [h for h in request.scope["headers"] if h[0] != b"origin"]
    with pytest.raises(GatewayError, match="403 PERMISSION_DENIED"):
        asyncio.run(login.authenticate(request))
