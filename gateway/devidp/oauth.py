"""The dev identity provider's OAuth 2.0 / OIDC endpoints: enough for the real sign-in code path.

- `/oauth2/authorize`: a page to pick a user name and groups (no password: a development
  provider), then a redirect back with a one-time code (PKCE S256 required).
- `/oauth2/token`: `authorization_code` (PKCE verified), `refresh_token`, and
  `client_credentials` for the configured machine clients (secret: `client_secret(client_id)`).
- `/logout`: returns to the gateway.
Codes live in memory for a minute; refresh tokens are sealed with a key derived from the
provider's signing key, so they survive a restart of the stack.
"""

from __future__ import annotations

import base64
import hmac
import html
import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.fernet import Fernet, InvalidToken
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from gateway.devidp.provider import DEV_CLIENT_ID, MACHINE_SCOPE, DevIdentityProvider
from gateway.pages import html_page
from gateway.routing.model import Endpoint

CODE_SECONDS = 60
MAX_CODES = 1000  # sign-ins not yet redeemed; the oldest goes first when full
REFRESH_TOKEN_SECONDS = 30 * 86400
_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")
# The whole authority of a loopback redirect: no user info, a loopback host, an optional port.
_LOOPBACK_AUTHORITY = re.compile(r"(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?")
_AUTHORIZE_PARAMS = ("client_id", "redirect_uri", "state", "nonce", "code_challenge", "scope")


@dataclass(frozen=True)
class _Grant:
    """What a one-time code stands for."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    user: str
    groups: tuple[str, ...]
    email: str | None
    expires_at: float


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def to_response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers={"Cache-Control": "no-store"},
        )


class DevOAuthEndpoints:
    """Routes to mount at the provider's issuer path."""

    def __init__(
        self,
        idp: DevIdentityProvider,
        *,
        gateway_url: str,
        machine_clients: Iterable[str] = (),
        token_ttl: int = 3600,
    ) -> None:
        self.idp = idp
        self.gateway_url = gateway_url.rstrip("/")
        self.machine_clients = frozenset(machine_clients)
        self.token_ttl = token_ttl
        self._codes: dict[str, _Grant] = {}
        key = base64.urlsafe_b64encode(idp.derived_secret("refresh-token"))
        self._refresh_sealer = Fernet(key)

    def endpoints(self) -> dict[str, Endpoint]:
        """The provider's calls, by the action of their row (routing/tables/gateway.py)."""
        return {
            "DevJwks": self.idp.jwks_endpoint,
            "DevDiscovery": self.idp.discovery_endpoint,
            "DevSignInPage": self.authorize_page,
            "DevSignIn": self.authorize_submit,
            "DevToken": self.token,
            "DevSignOut": self.logout,
        }

    # --- authorize ----------------------------------------------------------------------

    async def authorize_page(self, request: Request) -> Response:
        params = dict(request.query_params)
        problem = self._check_client(params)
        if problem:
            return html_page("Cannot sign in", f"<p>{html.escape(problem)}</p>", 400)
        if params.get("response_type") != "code" or params.get("code_challenge_method") != "S256":
            return _redirect_error(params, "invalid_request", "code flow with PKCE S256 required")
        if not params.get("code_challenge"):
            return _redirect_error(params, "invalid_request", "code_challenge required")
        return html_page("Sign in (development)", _login_form(params), 200)

    async def authorize_submit(self, request: Request) -> Response:
        form = await _form(request)
        problem = self._check_client(form)
        if problem:
            return html_page("Cannot sign in", f"<p>{html.escape(problem)}</p>", 400)
        user = form.get("username", "").strip()
        groups = tuple(g.strip() for g in form.get("groups", "").split(",") if g.strip())
        email = form.get("email", "").strip() or None
        if not _NAME.match(user) or not all(_NAME.match(g) for g in groups):
            body = "<p>User and group names: letters, digits and . _ @ + - only.</p>"
            return html_page("Sign in (development)", body + _login_form(form), 400)
        if not form.get("code_challenge"):
            return _redirect_error(form, "invalid_request", "code_challenge required")
        self._forget_expired_codes()
        while len(self._codes) >= MAX_CODES:
            self._codes.pop(next(iter(self._codes)))
        code = secrets.token_urlsafe(32)
        self._codes[code] = _Grant(
            client_id=form["client_id"],
            redirect_uri=form["redirect_uri"],
            code_challenge=form["code_challenge"],
            nonce=form.get("nonce") or None,
            user=user,
            groups=groups,
            email=email,
            expires_at=time.time() + CODE_SECONDS,
        )
        query = {"code": code}
        if form.get("state"):
            query["state"] = form["state"]
        return RedirectResponse(_with_query(form["redirect_uri"], query), status_code=303)

    def _check_client(self, params: dict) -> str | None:
        if params.get("client_id") != DEV_CLIENT_ID:
            return "Unknown client."
        if not self.redirect_allowed(params.get("redirect_uri", "")):
            return "This redirect address is not registered for the client."
        return None

    def redirect_allowed(self, uri: str) -> bool:
        """The gateway's callback, or a loopback address of a command-line client (RFC 8252)."""
        if uri == f"{self.gateway_url}/oauth2/callback":
            return True
        return _is_loopback_redirect(uri)

    def _forget_expired_codes(self) -> None:
        now = time.time()
        for code in [c for c, grant in self._codes.items() if grant.expires_at < now]:
            del self._codes[code]

    # --- token ------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        form = await _form(request)
        try:
            client_id, secret = _client_credentials(request, form)
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                body = self._redeem_code(client_id, form)
            elif grant_type == "refresh_token":
                body = self._refresh(client_id, form)
            elif grant_type == "client_credentials":
                body = self._client_credentials(client_id, secret)
            else:
                raise OAuthError("unsupported_grant_type", "grant type not supported")
        except OAuthError as exc:
            return exc.to_response()
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _redeem_code(self, client_id: str, form: dict) -> dict:
        grant = self._codes.pop(form.get("code", ""), None)  # one use only
        if grant is None or grant.expires_at < time.time() or grant.client_id != client_id:
            raise OAuthError("invalid_grant", "unknown, used or expired code")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match")
        verifier = form.get("code_verifier", "")
        if not verifier or not hmac.compare_digest(
            create_s256_code_challenge(verifier), grant.code_challenge
        ):
            raise OAuthError("invalid_grant", "PKCE verification failed")
        refresh = {"u": grant.user, "g": list(grant.groups), "e": grant.email, "c": client_id}
        return self._user_tokens(grant, client_id) | {
            "refresh_token": self._refresh_sealer.encrypt(json.dumps(refresh).encode()).decode()
        }

    def _refresh(self, client_id: str, form: dict) -> dict:
        try:
            data = json.loads(
                self._refresh_sealer.decrypt(
                    form.get("refresh_token", "").encode(), ttl=REFRESH_TOKEN_SECONDS
                )
            )
        except (InvalidToken, ValueError):
            raise OAuthError("invalid_grant", "refresh token not valid") from None
        if data.get("c") != client_id:
            raise OAuthError("invalid_grant", "refresh token of another client")
        grant = _Grant(client_id, "", "", None, data["u"], tuple(data["g"]), data.get("e"), 0.0)
        return self._user_tokens(grant, client_id)

    def _user_tokens(self, grant: _Grant, client_id: str) -> dict:
        ttl = self.token_ttl
        return {
            "access_token": self.idp.mint(grant.user, grant.groups, ttl=ttl),
            "id_token": self.idp.mint_id_token(
                grant.user,
                grant.groups,
                client_id=client_id,
                nonce=grant.nonce,
                email=grant.email,
                ttl=ttl,
            ),
            "token_type": "Bearer",
            "expires_in": ttl,
        }

    def _client_credentials(self, client_id: str, secret: str | None) -> dict:
        expected = self.idp.client_secret(client_id)
        if (
            client_id not in self.machine_clients
            or secret is None
            or not hmac.compare_digest(secret, expected)
        ):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        token = self.idp.mint(client_id, machine_client_id=client_id, ttl=self.token_ttl)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_ttl,
            "scope": MACHINE_SCOPE,
        }

    # --- logout -----------------------------------------------------------------------------

    async def logout(self, request: Request) -> Response:
        target = request.query_params.get("post_logout_redirect_uri", "")
        if target.startswith(f"{self.gateway_url}/"):
            return RedirectResponse(target, status_code=303)
        return html_page("Signed out", "<p>You are signed out.</p>", 200)


def _is_loopback_redirect(uri: str) -> bool:
    """`http://` to a loopback host, nothing else: what the browser follows is what was checked."""
    # Browsers drop or reinterpret these (tabs, backslashes), so the parsed URL could differ.
    if not uri.isascii() or any(c.isspace() or not c.isprintable() or c == "\\" for c in uri):
        return False
    try:
        parts = urlsplit(uri)
        port = parts.port  # ValueError when it is not a port number
    except ValueError:
        return False
    if parts.scheme != "http" or parts.fragment or (port is not None and not 0 < port < 65536):
        return False
    return _LOOPBACK_AUTHORITY.fullmatch(parts.netloc) is not None


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (the only kind OAuth endpoints take)."""
    body = await request.body()  # at most the form limit: larger bodies get 413 (body_limit.py)
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _client_credentials(request: Request, form: dict) -> tuple[str, str | None]:
    """The client id and secret, from HTTP Basic or the form (RFC 6749 §2.3.1)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    client_id = form.get("client_id")
    if not client_id:
        raise OAuthError("invalid_client", "client_id required", 401)
    return client_id, form.get("client_secret")


def _login_form(params: dict) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(params.get(name, ""))}">'
        for name in _AUTHORIZE_PARAMS
    )
    return (
        "<p><strong>Development identity provider.</strong> There is no password: anyone who "
        "can open this page can sign in as anyone. Never expose it beyond your own machine.</p>"
        '<form method="post" action="authorize">'
        f"{hidden}"
        '<p><label>User name <input id="username" name="username" required autofocus></label></p>'
        '<p><label>Groups (comma-separated) <input id="groups" name="groups"></label></p>'
        '<p><label>Email (optional) <input id="email" name="email" type="email"></label></p>'
        '<p><button id="sign-in" type="submit">Sign in</button></p>'
        "</form>"
    )


def _redirect_error(params: dict, error: str, description: str) -> Response:
    query = {"error": error, "error_description": description}
    if params.get("state"):
        query["state"] = params["state"]
    return RedirectResponse(_with_query(params["redirect_uri"], query), status_code=303)


def _with_query(url: str, query: dict) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(query)}"
