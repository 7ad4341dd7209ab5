"""OpenID Connect for the gateway's browser sign-in: the provider's endpoints, then the OAuth calls.

The endpoints come from the configuration or from the issuer's discovery document (fetched once,
asynchronously); the authorization URL and the token requests are gateway/authn/oauth.py's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from gateway.authn.oauth import IdentityProviderError, OAuthClient, TokenResponse
from gateway.config import BrowserLoginConfig


@dataclass(frozen=True)
class OidcEndpoints:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    end_session_endpoint: str | None


class OidcClient:
    """One app client of one provider, as the gateway uses it (async)."""

    def __init__(self, config: BrowserLoginConfig, http: httpx.AsyncClient) -> None:
        self.config = config
        self._http = http
        self._oauth = OAuthClient(config.client_id, config.client_secret)
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
            raise IdentityProviderError(
                "the provider's discovery document names no authorize/token endpoint"
            )
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
            raise IdentityProviderError(f"OIDC discovery at {url} failed: {exc}") from None
        if not isinstance(document, dict) or document.get("issuer") != self.config.issuer:
            raise IdentityProviderError(f"OIDC discovery at {url} names another issuer")
        return document

    async def authorization_url(
        self, redirect_uri: str, *, state: str, nonce: str, code_verifier: str
    ) -> str:
        endpoints = await self.endpoints()
        return self._oauth.authorization_url(
            endpoints.authorization_endpoint,
            redirect_uri=redirect_uri,
            scopes=self.config.scopes,
            state=state,
            nonce=nonce,
            code_verifier=code_verifier,
        )

    async def redeem_code(self, code: str, redirect_uri: str, code_verifier: str) -> TokenResponse:
        endpoints = await self.endpoints()
        return await asyncio.to_thread(
            self._oauth.redeem_code, endpoints.token_endpoint, code, redirect_uri, code_verifier
        )

    async def refresh(self, refresh_token: str) -> TokenResponse:
        endpoints = await self.endpoints()
        return await asyncio.to_thread(self._oauth.refresh, endpoints.token_endpoint, refresh_token)

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
