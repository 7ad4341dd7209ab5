"""A Cognito pool as the browser sign-in provider: its discovery document names no logout
endpoint, so sign-out goes to the hosted UI's `/logout`, on the authorization endpoint's host."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import httpx

from gateway.authn.oidc import OidcClient
from gateway.config import BrowserLoginConfig
from gateway.stack.serve import cognito_endpoint

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Pool"
HOSTED = "https://mlflow-team.auth.eu-west-1.amazoncognito.com"


def _discovery(asked: list[str]) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(
            200,
            json={
                "issuer": ISSUER,
                "authorization_endpoint": f"{HOSTED}/oauth2/authorize",
                "token_endpoint": f"{HOSTED}/oauth2/token",
                "jwks_uri": f"{ISSUER}/.well-known/jwks.json",
            },
        )

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


def test_cognito_sign_out_goes_to_the_hosted_ui_logout():
    asked: list[str] = []
    config = BrowserLoginConfig(issuer=ISSUER, client_id="ui", logout_style="cognito")

    async def logout() -> str | None:
        async with _discovery(asked) as http:
            return await OidcClient(config, http).logout_url("https://mlflow.example.com/x")

    url = urlsplit(asyncio.run(logout()))
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{HOSTED}/logout"
    assert parse_qs(url.query) == {
        "client_id": ["ui"],
        "logout_uri": ["https://mlflow.example.com/x"],
    }
    assert asked == [f"{ISSUER}/.well-known/openid-configuration"]


def test_a_configured_discovery_address_is_asked_instead_of_the_issuer():
    asked: list[str] = []
    config = BrowserLoginConfig(
        issuer=ISSUER, client_id="ui", discovery_url="http://127.0.0.1:9/pool/discovery"
    )

    async def endpoints():
        async with _discovery(asked) as http:
            return await OidcClient(config, http).endpoints()

    assert asyncio.run(endpoints()).token_endpoint == f"{HOSTED}/oauth2/token"
    assert asked == ["http://127.0.0.1:9/pool/discovery"]


def test_pool_addresses_follow_the_cognito_endpoint_variable():
    environ = {"AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": "http://127.0.0.1:4566/"}
    jwks = f"{ISSUER}/.well-known/jwks.json"
    assert cognito_endpoint(jwks, environ) == (
        "http://127.0.0.1:4566/eu-west-1_Pool/.well-known/jwks.json"
    )
    assert cognito_endpoint(jwks, {}) == jwks
    assert cognito_endpoint("https://login.example.com/keys", environ) == (
        "https://login.example.com/keys"
    )
