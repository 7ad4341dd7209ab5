"""An issuer's JWKS endpoint down or slow, seen through the gateway over HTTP: known keys keep
working, a token signed by a key never seen is refused with 401 (never a 5xx, never a hang),
and the new key works once the endpoint is back."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from gw_support import ServerThread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from test_jwks import CLIENT, ISSUER, SigningKey

from gateway.config import IssuerConfig, JwksSettings

# A trickling endpoint sends its document over this long: far past the fetch timeout.
TRICKLE_S = 40
SETTINGS = JwksSettings(
    cache_seconds=3600, refresh_cooldown_seconds=1, max_stale_seconds=3600, fetch_timeout_seconds=2
)
SEARCH = "/api/2.0/mlflow/experiments/search"


class JwksEndpoint:
    """An issuer's JWKS over HTTP that can be up, failing (500 page) or trickling its answer."""

    def __init__(self) -> None:
        self.published: list[dict] = []
        self.mode = "up"
        self.released = threading.Event()

    def app(self) -> Starlette:
        async def jwks(request: Request) -> Response:
            if self.mode == "failing":
                return Response("<html>Service Unavailable</html>", 503, media_type="text/html")
            document = JSONResponse({"keys": list(self.published)}).body
            if self.mode == "up":
                return Response(document, media_type="application/json")

            async def trickle():
                # One byte a second: every read is prompt, the whole answer is not.
                for index in range(len(document)):
                    if self.released.is_set() or index >= TRICKLE_S:
                        yield document[index:]
                        return
                    yield document[index : index + 1]
                    await asyncio.sleep(1)

            return StreamingResponse(trickle(), media_type="application/json")

        return Starlette(routes=[Route("/jwks.json", jwks)])


@pytest.fixture
def endpoint():
    served = JwksEndpoint()
    with ServerThread(served.app()) as server:
        yield served, f"{server.url}/jwks.json"
    served.released.set()


@pytest.fixture
def keys() -> tuple[SigningKey, SigningKey]:
    return SigningKey(), SigningKey()


def _search(gateway, token: str) -> httpx.Response:
    # Waits less than a trickling endpoint takes: a gateway that waits for it fails the test.
    with httpx.Client(base_url=gateway.url, trust_env=False, timeout=TRICKLE_S / 2) as client:
        return client.get(SEARCH, headers={"Authorization": f"Bearer {token}"})


def _past_the_cooldown() -> None:
    threading.Event().wait(SETTINGS.refresh_cooldown_seconds + 0.5)


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error_code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("outage", ["failing", "trickling"])
def test_known_keys_work_and_a_new_key_is_refused_until_the_endpoint_is_back(
    start_gateway, echo_upstream, endpoint, keys, outage
):
    served, jwks_url = endpoint
    known, rotated_in = keys
    served.published.append(known.jwk)
    issuer = IssuerConfig(issuer=ISSUER, jwks_url=jwks_url, client_ids=(CLIENT,))
    gateway = start_gateway(echo_upstream[1], issuers=(issuer,), jwks=SETTINGS, dev_idp_dir=None)
    assert _search(gateway, known.token()).status_code == 200

    served.published.append(rotated_in.jwk)
    served.mode = outage
    _past_the_cooldown()  # so the new key's token makes the gateway ask the endpoint
    _assert_refused(_search(gateway, rotated_in.token()))
    assert _search(gateway, known.token()).status_code == 200  # a token not seen before

    served.mode = "up"
    served.released.set()
    _past_the_cooldown()
    assert _search(gateway, rotated_in.token()).status_code == 200
