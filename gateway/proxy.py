"""The forward step: pass an authenticated, authorized request to the handler tier and stream back.

Request and response bodies stream through (never buffered whole). Headers that only mean
something on one hop are dropped, and every header by which a client could claim an identity is
stripped: the handler tier learns who is calling only from the signed identity header added here.
"""

from __future__ import annotations

import logging

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse

from gateway.errors import UpstreamTimeout, UpstreamUnavailable
from gateway.session import LOGIN_COOKIE, SESSION_COOKIE
from store.identity import IDENTITY_HEADER, Principal, sign_identity

_logger = logging.getLogger(__name__)

# RFC 9110 §7.6.1 connection-specific headers, plus those the HTTP client sets itself.
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)

# Headers by which a client could claim an identity or skip a check upstream: never forwarded.
UNTRUSTED_REQUEST_HEADERS = frozenset(
    {
        "authorization",
        "x-mlflow-authorization",
        "x-mlflow-guardrail-bypass",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-preferred-username",
        "x-forwarded-groups",
        "x-forwarded-access-token",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "forwarded",
        "x-real-ip",
        "x-remote-user",
        "remote-user",
        "x-user",
        "x-email",
        "x-auth-request-user",
        "x-auth-request-email",
        "x-auth-request-groups",
        "x-auth-request-preferred-username",
        "x-amzn-oidc-identity",
        "x-amzn-oidc-data",
        "x-amzn-oidc-accesstoken",
        # The gateway checks origins itself; MLflow's own check would see the public origin.
        "origin",
    }
)
# Any header in our own namespace is ours to set, never the client's.
_OWN_PREFIX = "x-cedarflow-"
_OWN_COOKIE_SUFFIXES = (SESSION_COOKIE, LOGIN_COOKIE)


def forwardable_request_headers(request: Request) -> list[tuple[str, str]]:
    """The client's headers minus hop-by-hop and identity-claiming ones."""
    connection_listed = {
        token.strip().lower()
        for token in request.headers.get("connection", "").split(",")
        if token.strip()
    }
    kept = []
    for name, value in request.headers.items():
        lower = name.lower()
        if (
            lower in HOP_BY_HOP_HEADERS
            or lower in UNTRUSTED_REQUEST_HEADERS
            or lower in connection_listed
            or lower.startswith(_OWN_PREFIX)
        ):
            continue
        if lower == "cookie":
            value = _without_own_cookies(value)
            if not value:
                continue
        kept.append((lower, value))
    return kept


def _without_own_cookies(header: str) -> str:
    # The session cookie is a credential for the gateway only; MLflow never sees it.
    kept = [
        pair
        for pair in header.split(";")
        if pair.strip() and not pair.strip().split("=", 1)[0].endswith(_OWN_COOKIE_SUFFIXES)
    ]
    return ";".join(kept).strip()


class Forwarder:
    """Forwards requests to the handler tier over one pooled HTTP client."""

    def __init__(self, upstream_url: str, identity_secret: bytes, client: httpx.AsyncClient):
        self.upstream = httpx.URL(upstream_url.rstrip("/"))
        self._secret = identity_secret
        self._client = client

    async def forward(self, request: Request, principal: Principal) -> StreamingResponse:
        """Send `request` upstream as `principal` and stream the answer back."""
        upstream_request = self._client.build_request(
            request.method,
            self._upstream_url(request),
            headers=self._upstream_headers(request, principal),
            content=_body(request),
        )
        try:
            response = await self._client.send(upstream_request, stream=True)
        except httpx.TimeoutException:
            _logger.warning("Upstream timed out: %s %s", request.method, request.url.path)
            raise UpstreamTimeout("The MLflow server did not answer in time.") from None
        except httpx.TransportError as exc:
            _logger.warning("Upstream unreachable: %s", exc)
            raise UpstreamUnavailable("The MLflow server is not reachable.") from None
        streamed = StreamingResponse(
            response.aiter_raw(),
            status_code=response.status_code,
            background=BackgroundTask(response.aclose),
        )
        # Raw pairs keep repeated headers (Set-Cookie) and the upstream's exact values.
        streamed.raw_headers = _response_headers(response)
        return streamed

    def _upstream_url(self, request: Request) -> httpx.URL:
        # raw_path keeps the client's encoding, so the handler tier routes exactly what was sent.
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        query = request.scope.get("query_string", b"")
        target = raw_path + (b"?" + query if query else b"")
        return self.upstream.copy_with(raw_path=target)

    def _upstream_headers(self, request: Request, principal: Principal) -> list[tuple[str, str]]:
        headers = forwardable_request_headers(request)
        identity = sign_identity(
            principal,
            request.method,
            request.scope["path"],
            self._secret,
            query=request.scope.get("query_string", b"").decode("latin-1"),
        )
        headers.append((IDENTITY_HEADER.lower(), identity))
        if request.client is not None:
            headers.append(("x-forwarded-for", request.client.host))
        headers.append(("x-forwarded-proto", request.url.scheme))
        return headers


def _body(request: Request):
    # A body is present only when the client announced one; GETs usually have none.
    if "content-length" in request.headers or "transfer-encoding" in request.headers:
        return request.stream()
    return None


def _response_headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [
        (name.lower(), value)
        for name, value in response.headers.raw
        if name.lower().decode("latin-1") not in HOP_BY_HOP_HEADERS
    ]
