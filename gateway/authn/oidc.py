"""OpenID Connect from the relying party's side: PKCE, endpoints, and the token endpoint.

Used by the gateway for browser sign-in; the PKCE helpers also serve the command-line client.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from gateway.config import BrowserLoginConfig


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random string (state, nonce, code verifier)."""
    return secrets.token_urlsafe(nbytes)


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: base64url(sha256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcError(Exception):
    """The identity provider could not be reached or refused a request."""

    def __init__(self, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error  # the RFC 6749 error code, when the provider sent one


@dataclass(frozen=True)
class OidcEndpoints:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    end_session_endpoint: str | None


@dataclass(frozen=True)
class TokenResponse:
    id_token: str | None
    access_token: str | None
    refresh_token: str | None
    expires_in: int | None


class OidcClient:
    """One app client of one provider, as the gateway uses it (async)."""

    def __init__(self, config: BrowserLoginConfig, http: httpx.AsyncClient) -> None:
        self.config = config
        self._http = http
        self._endpoints: OidcEndpoints | None = None
        self._lock = asyncio.Lock()

    async def endpoints(self) -> OidcEndpoints:
        """The provider's endpoints: configured ones, the rest from discovery (fetched once)."""
        if self._endpoints is not None:
            return self._endpoints
        async with self._lock:
            if self._endpoints is None:
                self._endpoints = await self._resolve()
        return self._endpoints

    async def _resolve(self) -> OidcEndpoints:
        config = self.config
        discovered: dict = {}
        if not (config.authorization_endpoint and config.token_endpoint):
            discovered = await self._discover()
        authorize = config.authorization_endpoint or discovered.get("authorization_endpoint")
        token = config.token_endpoint or discovered.get("token_endpoint")
        if not isinstance(authorize, str) or not isinstance(token, str):
            raise OidcError("the provider's discovery document names no authorize/token endpoint")
        end_session = config.end_session_endpoint or discovered.get("end_session_endpoint")
        return OidcEndpoints(
            issuer=config.issuer,
            authorization_endpoint=authorize,
            token_endpoint=token,
            end_session_endpoint=end_session if isinstance(end_session, str) else None,
        )

    async def _discover(self) -> dict:
        url = f"{self.config.issuer.rstrip('/')}/.well-known/openid-configuration"
        try:
            response = await self._http.get(url, timeout=5.0)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(f"OIDC discovery at {url} failed: {exc}") from None
        if not isinstance(document, dict) or document.get("issuer") != self.config.issuer:
            raise OidcError(f"OIDC discovery at {url} names another issuer")
        return document

    async def authorization_url(
        self, redirect_uri: str, *, state: str, nonce: str, code_verifier: str
    ) -> str:
        endpoints = await self.endpoints()
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": pkce_challenge(code_verifier),
            "code_challenge_method": "S256",
        }
        return f"{endpoints.authorization_endpoint}?{urlencode(query)}"

    async def redeem_code(self, code: str, redirect_uri: str, code_verifier: str) -> TokenResponse:
        return await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            }
        )

    async def refresh(self, refresh_token: str) -> TokenResponse:
        return await self._token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    async def logout_url(self, return_to: str) -> str | None:
        """Where to send a browser to end its IdP session too, or None when not configured."""
        endpoint = (await self.endpoints()).end_session_endpoint
        if not endpoint:
            return None
        if self.config.logout_style == "cognito":
            query = {"client_id": self.config.client_id, "logout_uri": return_to}
        else:
            query = {"client_id": self.config.client_id, "post_logout_redirect_uri": return_to}
        return f"{endpoint}?{urlencode(query)}"

    async def _token_request(self, form: dict[str, str]) -> TokenResponse:
        endpoints = await self.endpoints()
        auth = None
        if self.config.client_secret:
            auth = httpx.BasicAuth(self.config.client_id, self.config.client_secret)
        else:
            form = {**form, "client_id": self.config.client_id}
        try:
            response = await self._http.post(
                endpoints.token_endpoint, data=form, auth=auth, timeout=10.0
            )
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(f"the token endpoint failed: {exc}") from None
        if response.status_code != 200 or not isinstance(document, dict):
            error = document.get("error") if isinstance(document, dict) else None
            raise OidcError(f"the token endpoint refused: {error}", error=error)
        return TokenResponse(
            id_token=_text(document.get("id_token")),
            access_token=_text(document.get("access_token")),
            refresh_token=_text(document.get("refresh_token")),
            expires_in=document.get("expires_in")
            if isinstance(document.get("expires_in"), int)
            else None,
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
