"""Browser sign-in: OIDC authorization code with PKCE, and the session cookie that follows.

    browser ─▶ /oauth2/login ─▶ IdP authorize page ─▶ /oauth2/callback ─▶ the page it wanted

The callback redeems the code at the token endpoint and verifies the ID token with the same code
as bearer tokens (authn/bearer.py), nonce included; the session then lives in a sealed cookie
(authn/session.py) and is renewed with the refresh token shortly before the ID token expires.
`/.well-known/cedarflow` tells command-line clients where to sign in.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import logging
import time
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from gateway.authn.bearer import Authenticator
from gateway.authn.csrf import SameOriginCheck
from gateway.authn.oauth import IdentityProviderError, random_token
from gateway.authn.oidc import OidcClient
from gateway.authn.principal import Authenticated
from gateway.authn.session import (
    LOGIN_COOKIE,
    MAX_COOKIE_BYTES,
    SESSION_COOKIE,
    UI_USER_COOKIE,
    CookieSealer,
    InvalidCookie,
    LoginAttempt,
    Session,
)
from gateway.config import BrowserLoginConfig, GatewayConfig
from gateway.errors import AuthenticationError
from gateway.pages import html_page
from gateway.routing.model import Endpoint
from gateway.routing.tables.gateway import (
    CALLBACK_PATH,
    LOGIN_PATH,
    SIGNED_OUT_PATH,
)

_logger = logging.getLogger(__name__)

LOGIN_STATE_SECONDS = 600  # time allowed on the IdP's page
_REFRESH_REUSE_SECONDS = 30.0  # parallel calls with the old cookie share one refresh
SESSION_ENDED_MESSAGE = "Your session has ended: sign in again."
SIGNED_OUT_MESSAGE = "You signed out: sign in again."
# What the session cookie holds for a while after the UI signed out: the next page load is sent
# through /logout (which ends the IdP's session too) instead of signing straight back in.
SIGNED_OUT_VALUE = "signed-out"
SIGNED_OUT_SECONDS = 120


@dataclass(frozen=True)
class SessionOutcome:
    """A caller authenticated by its session cookie, and the renewed cookie to send, if any."""

    caller: Authenticated
    set_cookie: str | None = None


class SessionEnded(AuthenticationError):
    """The session cookie is unusable; the answer also clears it."""

    def __init__(self, reason: str, clear_cookie: str) -> None:
        super().__init__(SESSION_ENDED_MESSAGE, reason=reason)
        self.headers["Set-Cookie"] = clear_cookie


class SignedOutFromUi(AuthenticationError):
    """The UI's Logout removed its user cookie: the session is over."""

    def __init__(self, set_cookie: str | None = None) -> None:
        super().__init__(SIGNED_OUT_MESSAGE, reason="signed out from the UI")
        if set_cookie is not None:
            self.headers["Set-Cookie"] = set_cookie


class BrowserLogin:
    """The sign-in routes and the session authenticator of one gateway."""

    def __init__(
        self,
        config: GatewayConfig,
        login: BrowserLoginConfig,
        authenticator: Authenticator,
        http: httpx.AsyncClient,
    ) -> None:
        self.public_url = config.public_url.rstrip("/")
        self.login = login
        self.settings = config.session
        self.secure = self.public_url.startswith("https://")
        # __Host-: the browser refuses it unless Secure, Path=/ and no Domain (no subdomain games).
        self.cookie_name = f"__Host-{SESSION_COOKIE}" if self.secure else SESSION_COOKIE
        self.redirect_uri = f"{self.public_url}{CALLBACK_PATH}"
        self.oidc = OidcClient(login, http)
        self.csrf = SameOriginCheck(self.public_url)
        self._authenticator = authenticator
        self._sealer = CookieSealer(self.settings.secret or config.identity_secret)
        self._refreshes = _RefreshCoalescer()

    def endpoints(self) -> dict[str, Endpoint]:
        """The sign-in calls, by the action of their row (routing/tables/gateway.py)."""
        return {
            "SignIn": self.start,
            "SignInCallback": self.callback,
            "SignOut": self.logout,
            "SignedOut": self.signed_out,
            "ClientDiscovery": self.client_discovery,
        }

    # --- the session on every request -----------------------------------------------------

    def has_session_cookie(self, request: Request) -> bool:
        return bool(request.cookies.get(self.cookie_name))

    async def authenticate(self, request: Request) -> SessionOutcome:
        """The caller of a request that carries the session cookie (CSRF-checked)."""
        self.csrf.check(request)
        value = request.cookies[self.cookie_name]
        if value == SIGNED_OUT_VALUE:
            raise SignedOutFromUi()
        try:
            session = self._sealer.open_session(value, self.settings.max_age_seconds)
        except InvalidCookie as exc:
            raise SessionEnded(str(exc), self._clear_session_cookie()) from None
        if session.caller.issuer != self.login.issuer:  # the sign-in provider was changed
            raise SessionEnded("session of another issuer", self._clear_session_cookie())
        if session.ui_marker and UI_USER_COOKIE not in request.cookies:
            marker = self._cookie(self.cookie_name, SIGNED_OUT_VALUE, SIGNED_OUT_SECONDS, "/")
            raise SignedOutFromUi(marker)
        if not session.needs_refresh(self._refresh_margin(session)):
            return SessionOutcome(session.caller)
        if session.refresh_token is None:
            if time.time() < session.expires_at:
                return SessionOutcome(session.caller)
            raise SessionEnded("expired, no refresh token", self._clear_session_cookie())
        try:
            renewed = await self._refreshes.run(session, self._refresh)
        except AuthenticationError as exc:
            reason = f"refresh refused: {exc.reason}"
            raise SessionEnded(reason, self._clear_session_cookie()) from None
        except IdentityProviderError as exc:
            if exc.error is None and time.time() < session.expires_at:
                _logger.warning("Session refresh failed, keeping the session for now: %s", exc)
                return SessionOutcome(session.caller)
            raise SessionEnded(f"refresh failed: {exc}", self._clear_session_cookie()) from None
        return SessionOutcome(renewed.caller, self._session_cookie(renewed))

    def _refresh_margin(self, session: Session) -> float:
        # Short-lived tokens are renewed in their last quarter, not on every call.
        lifetime = max(session.expires_at - session.issued_at, 0.0)
        return min(float(self.settings.refresh_margin_seconds), lifetime / 4)

    async def _refresh(self, session: Session) -> Session:
        tokens = await self.oidc.refresh(session.refresh_token or "")
        if tokens.id_token is None:
            raise IdentityProviderError(
                "the token endpoint returned no ID token", error="no_id_token"
            )
        caller, claims = await self._authenticator.verify_id_token(
            tokens.id_token, client_id=self.login.client_id, nonce=None
        )
        if caller.principal.subject != session.caller.principal.subject:
            raise IdentityProviderError(
                "the refreshed ID token names another user", error="wrong_subject"
            )
        return session.renewed(
            caller, float(claims["exp"]), float(claims["iat"]), tokens.refresh_token
        )

    # --- the routes ---------------------------------------------------------------------------

    async def start(self, request: Request) -> Response:
        """Send the browser to the IdP, remembering state, nonce and PKCE verifier in a cookie."""
        attempt = LoginAttempt(
            state=random_token(),
            nonce=random_token(),
            code_verifier=random_token(48),
            return_to=safe_return_path(request.query_params.get("next")),
        )
        try:
            url = await self.oidc.authorization_url(
                self.redirect_uri,
                state=attempt.state,
                nonce=attempt.nonce,
                code_verifier=attempt.code_verifier,
            )
        except IdentityProviderError as exc:
            _logger.warning("Sign-in could not start: %s", exc)
            return html_page(
                "Sign-in unavailable", "<p>The identity provider is not reachable.</p>", 502
            )
        response = RedirectResponse(url, status_code=302)
        response.headers.append(
            "Set-Cookie",
            self._cookie(
                LOGIN_COOKIE, self._sealer.seal_login(attempt), LOGIN_STATE_SECONDS, "/oauth2/"
            ),
        )
        return response

    async def callback(self, request: Request) -> Response:
        """Redeem the code, verify the ID token, open the session."""
        params = request.query_params
        if "error" in params:
            return _retry_page(f"The identity provider said: {params['error']}.", 400)
        try:
            attempt = self._sealer.open_login(
                request.cookies.get(LOGIN_COOKIE, ""), LOGIN_STATE_SECONDS
            )
        except InvalidCookie:
            return _retry_page("This sign-in expired or was started elsewhere.", 400)
        if not hmac.compare_digest(params.get("state", ""), attempt.state) or not params.get(
            "code"
        ):
            return _retry_page("This sign-in does not match the one this browser started.", 400)
        try:
            tokens = await self.oidc.redeem_code(
                params["code"], self.redirect_uri, attempt.code_verifier
            )
            if tokens.id_token is None:
                raise IdentityProviderError("the token endpoint returned no ID token")
            caller, claims = await self._authenticator.verify_id_token(
                tokens.id_token, client_id=self.login.client_id, nonce=attempt.nonce
            )
        except IdentityProviderError as exc:
            _logger.warning("Sign-in failed at the token endpoint: %s", exc)
            return _retry_page("The identity provider did not complete the sign-in.", 502)
        except AuthenticationError as exc:
            _logger.warning("Sign-in refused: %s", exc.reason)
            return _retry_page("The identity provider's answer was not accepted.", 401)
        now = time.time()
        session = Session(
            caller=caller,
            expires_at=float(claims["exp"]),
            issued_at=float(claims["iat"]),
            signed_in_at=now,
            refresh_token=tokens.refresh_token,
            ui_marker=True,
        )
        response = RedirectResponse(attempt.return_to, status_code=303)
        response.headers.append("Set-Cookie", self._session_cookie(session))
        response.headers.append("Set-Cookie", self._ui_user_cookie(session))
        response.headers.append("Set-Cookie", self._cookie(LOGIN_COOKIE, "", 0, "/oauth2/"))
        return response

    async def logout(self, request: Request) -> Response:
        """Forget the session, then end the IdP's session too when it offers a logout page."""
        target = f"{self.public_url}{SIGNED_OUT_PATH}"
        try:
            idp_logout = await self.oidc.logout_url(target)
        except IdentityProviderError:
            idp_logout = None
        response = RedirectResponse(idp_logout or target, status_code=303)
        response.headers.append("Set-Cookie", self._clear_session_cookie())
        response.headers.append("Set-Cookie", self._cookie(UI_USER_COOKIE, "", 0, "/", False))
        return response

    async def signed_out(self, request: Request) -> Response:
        body = f'<p>You are signed out. <a href="{LOGIN_PATH}">Sign in</a></p>'
        return html_page("Signed out", body)

    async def client_discovery(self, request: Request) -> Response:
        """Where command-line clients and jobs get tokens for this gateway."""
        try:
            endpoints = await self.oidc.endpoints()
        except IdentityProviderError as exc:
            _logger.warning("Client discovery failed: %s", exc)
            return JSONResponse(
                {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "IdP unreachable."}, 502
            )
        document = {
            "gateway": self.public_url,
            "issuer": endpoints.issuer,
            "authorization_endpoint": endpoints.authorization_endpoint,
            "token_endpoint": endpoints.token_endpoint,
            "client_id": self.login.public_client_id,
            "scopes": list(self.login.scopes),
            "redirect_host": self.login.cli_loopback_host,
            "redirect_port": self.login.cli_loopback_port,
        }
        return JSONResponse(document, headers={"Cache-Control": "max-age=300"})

    # --- cookies ----------------------------------------------------------------------------

    def _session_cookie(self, session: Session) -> str:
        value = self._sealer.seal_session(session)
        if len(value) > MAX_COOKIE_BYTES:
            # Too big for a browser: keep the session until the ID token expires, then sign in.
            _logger.warning("Session cookie too large; renewal disabled for this session")
            value = self._sealer.seal_session(session.without_refresh_token())
        remaining = session.signed_in_at + self.settings.max_age_seconds - time.time()
        return self._cookie(self.cookie_name, value, max(int(remaining), 0), "/")

    def _clear_session_cookie(self) -> str:
        return self._cookie(self.cookie_name, "", 0, "/")

    def _ui_user_cookie(self, session: Session) -> str:
        """The UI's user cookie: readable by the page, so that its Logout can remove it."""
        remaining = session.signed_in_at + self.settings.max_age_seconds - time.time()
        name = quote(session.caller.principal.username, safe="")
        return self._cookie(UI_USER_COOKIE, name, max(int(remaining), 0), "/", False)

    def _cookie(
        self, name: str, value: str, max_age: int, path: str, http_only: bool = True
    ) -> str:
        parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age}"]
        if http_only:
            parts.append("HttpOnly")
        parts.append("SameSite=Lax")  # sent on the IdP's redirect back, not on cross-site POSTs
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)


def wants_html(request: Request) -> bool:
    """A browser navigating to a page (not a script's call): it can be sent to sign in."""
    if request.method not in ("GET", "HEAD"):
        return False
    mode = request.headers.get("sec-fetch-mode")
    if mode is not None:
        return mode == "navigate"
    return "text/html" in request.headers.get("accept", "")


def login_redirect(request: Request) -> RedirectResponse:
    """Send a browser to sign in, coming back to where it was going."""
    target = request.scope["path"]
    if request.scope.get("query_string"):
        target += "?" + request.scope["query_string"].decode("latin-1")
    return RedirectResponse(f"{LOGIN_PATH}?next={quote(target, safe='')}", status_code=302)


def safe_return_path(value: str | None) -> str:
    """A path on this gateway to return to after sign-in; anything else becomes '/'."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(ch) < 0x20 for ch in value):
        return "/"
    return value


class _RefreshCoalescer:
    """One refresh per session at a time; calls that still carry the old cookie reuse its result."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, asyncio.Task]] = {}

    async def run(self, session: Session, refresh) -> Session:
        key = hashlib.sha256(f"{session.refresh_token}|{session.expires_at}".encode()).hexdigest()
        now = time.monotonic()
        self._entries = {
            k: v for k, v in self._entries.items() if now - v[0] < _REFRESH_REUSE_SECONDS
        }
        entry = self._entries.get(key)
        if entry is None or (entry[1].done() and _failed(entry[1])):
            entry = (now, asyncio.ensure_future(refresh(session)))
            self._entries[key] = entry
        return await asyncio.shield(entry[1])


def _failed(task: asyncio.Task) -> bool:
    return task.cancelled() or task.exception() is not None


def _retry_page(message: str, status: int) -> HTMLResponse:
    body = f'<p>{html.escape(message)} <a href="{LOGIN_PATH}">Try again</a>.</p>'
    return html_page("Sign-in failed", body, status)
