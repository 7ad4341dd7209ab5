"""JWKS caching: keys rotated in and out, the refresh cool-down, a stale copy during outages.

Keys are served over HTTP by a real local server whose key list the test edits; time is a fake
clock handed to the cache, so no test waits.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import rsa
from gw_support import SECRET, ServerThread
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.authn.bearer import Authenticator
from gateway.config import GatewayConfig, IssuerConfig, JwksSettings
from gateway.errors import AuthenticationError

ISSUER = "https://idp.example/pool"
CLIENT = "app-client"
SETTINGS = JwksSettings(
    cache_seconds=600, refresh_cooldown_seconds=10, max_stale_seconds=3600, fetch_timeout_seconds=3
)


class SigningKey:
    def __init__(self) -> None:
        self.kid = uuid.uuid4().hex
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwk = {
            **jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True),
            "kid": self.kid,
            "alg": "RS256",
            "use": "sig",
        }

    def token(self) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": "user-1",
            "username": "alice",
            "client_id": CLIENT,
            "token_use": "access",
            "scope": "openid",
            "iat": now,
            "exp": now + 3600,
        }
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def keys() -> tuple[SigningKey, SigningKey]:
    return SigningKey(), SigningKey()


@pytest.fixture
def jwks_server():
    """A JWKS endpoint over HTTP; the test edits `published` to rotate keys."""
    published: list[dict] = []

    async def jwks(request):
        return JSONResponse({"keys": list(published)})

    app = Starlette(routes=[Route("/jwks.json", jwks)])
    with ServerThread(app) as server:
        yield published, f"{server.url}/jwks.json"


def make_authenticator(jwks_url: str, client: httpx.AsyncClient, clock: FakeClock):
    config = GatewayConfig(
        upstream_url="http://127.0.0.1:9",
        identity_secret=SECRET,
        public_url="http://127.0.0.1:8",
        jwks=SETTINGS,
    )
    issuer = IssuerConfig(issuer=ISSUER, jwks_url=jwks_url, client_ids=(CLIENT,))
    authn = Authenticator(config, (issuer,), client, clock=clock)
    return authn, authn.jwks_caches[ISSUER]


async def accepted(authn: Authenticator, token: str) -> bool:
    try:
        await authn.verify_token(token)
    except AuthenticationError:
        return False
    return True


def test_a_new_key_is_accepted_after_a_refresh(jwks_server, keys):
    published, url = jwks_server
    old, new = keys
    published.append(old.jwk)

    async def scenario():
        clock = FakeClock()
        async with httpx.AsyncClient() as client:
            authn, cache = make_authenticator(url, client, clock)
            for _ in range(20):
                assert await accepted(authn, old.token())
            assert cache.fetch_count == 1
            # Rotated in right after a fetch: within the cool-down the kid is still unknown ...
            published.append(new.jwk)
            clock.advance(1)
            assert not await accepted(authn, new.token())
            # ... and junk kids in that window cost no fetches.
            for _ in range(10):
                assert not await accepted(authn, SigningKey().token())
            assert cache.fetch_count == 1
            # After the cool-down the unknown kid triggers one refresh and is accepted.
            clock.advance(SETTINGS.refresh_cooldown_seconds)
            assert await accepted(authn, new.token())
            assert await accepted(authn, old.token())
            assert cache.fetch_count == 2

    asyncio.run(scenario())


def test_a_removed_key_is_refused_after_the_cache_lifetime(jwks_server, keys):
    published, url = jwks_server
    old, new = keys
    published.extend([old.jwk, new.jwk])

    async def scenario():
        clock = FakeClock()
        async with httpx.AsyncClient() as client:
            authn, cache = make_authenticator(url, client, clock)
            token = old.token()  # one token string: verified results are remembered too
            assert await accepted(authn, token)
            published.remove(old.jwk)
            clock.advance(SETTINGS.cache_seconds - 1)
            assert await accepted(authn, token)  # still within the cache lifetime
            clock.advance(2)
            assert not await accepted(authn, token)
            assert not await accepted(authn, old.token())
            assert await accepted(authn, new.token())
            assert cache.fetch_count == 2

    asyncio.run(scenario())


def test_a_stale_copy_serves_while_the_endpoint_is_down(keys):
    key, _ = keys
    url = "https://idp.example/pool/.well-known/jwks.json"

    async def scenario():
        clock = FakeClock()
        with respx.mock(assert_all_called=True) as mock:
            route = mock.get(url)
            route.side_effect = [
                httpx.Response(200, json={"keys": [key.jwk]}),
                httpx.ConnectError("refused"),
                httpx.Response(503),
                httpx.ConnectError("refused"),
            ]
            async with httpx.AsyncClient() as client:
                authn, cache = make_authenticator(url, client, clock)
                assert await accepted(authn, key.token())
                clock.advance(SETTINGS.cache_seconds + 1)
                assert await accepted(authn, key.token())  # refetch fails: stale copy used
                clock.advance(SETTINGS.refresh_cooldown_seconds)
                assert await accepted(authn, key.token())  # 503: stale copy again
                assert route.call_count == 3
                # A stale copy is not kept for ever.
                clock.advance(SETTINGS.max_stale_seconds)
                assert not await accepted(authn, key.token())
                assert route.call_count == 4

    asyncio.run(scenario())


def test_no_keys_at_all_while_the_endpoint_is_down(keys):
    key, _ = keys
    url = "https://idp.example/pool/.well-known/jwks.json"

    async def scenario():
        with respx.mock() as mock:
            mock.get(url).mock(side_effect=httpx.ConnectError("refused"))
            async with httpx.AsyncClient() as client:
                authn, cache = make_authenticator(url, client, FakeClock())
                assert not await accepted(authn, key.token())
                assert not await cache.ensure_loaded()

    asyncio.run(scenario())


def test_keys_that_are_not_rs256_signing_keys_are_ignored(jwks_server, keys):
    published, url = jwks_server
    key, _ = keys
    published.extend(
        [
            {**key.jwk, "use": "enc"},
            {**key.jwk, "alg": "RS512"},
            {"kty": "oct", "kid": key.kid, "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "broken", "n": "AQAB"},
        ]
    )

    async def scenario():
        async with httpx.AsyncClient() as client:
            authn, _ = make_authenticator(url, client, FakeClock())
            assert not await accepted(authn, key.token())

    asyncio.run(scenario())


def test_the_gateway_fetches_the_dev_jwks_once_for_many_calls(gateway):
    token = gateway.idp.mint("alice")
    with gateway.client(headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(20):
            assert client.get("/api/2.0/mlflow/experiments/search").status_code == 200
        ready = client.get("/readyz").json()
    assert ready["issuers"] == {gateway.idp.issuer: True}
    assert gateway.jwks_fetches() == 1
