"""The forward step: pass an authenticated, authorized request to the handler tier and stream back.

A request body is forwarded as the exact bytes the gateway read and decided on (at most its
route's limit, gateway/body_limit.py), with their own Content-Length: a chunked body reaches the
handler tier whole, never re-framed. Only artifact uploads, which have no limit, stream through.
Response bodies stream back. Headers that only mean something on one hop are dropped, and every
header by which a client could claim an identity is stripped: the handler tier learns who is
calling only from the signed identity header added here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import aiohttp
import yarl
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.authn.session import LOGIN_COOKIE, SESSION_COOKIE, UI_USER_COOKIE
from gateway.body_limit import body_limit
from gateway.errors import upstream_failed, upstream_timeout, upstream_unavailable
from store.handler.identity import IDENTITY_HEADER, Principal, sign_identity

_logger = logging.getLogger(__name__)
# Idle upstream connections are dropped before uvicorn's 5 s keep-alive closes them on the
# handler tier's side: a call sent on a connection being closed fails.
_UPSTREAM_IDLE_SECONDS = 4.0

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
_OWN_COOKIE_SUFFIXES = (SESSION_COOKIE, LOGIN_COOKIE, UI_USER_COOKIE)


def forwardable_request_headers(
    request: Request, *, body_framed_here: bool = False
) -> list[tuple[str, str]]:
    """The client's headers minus hop-by-hop and identity-claiming ones.

    `body_framed_here`: the body is sent as bytes whose Content-Length the HTTP client sets.
    """
    connection_listed = {
        token.strip().lower()
        for token in request.headers.get("connection", "").split(",")
        if token.strip()
    }
    # A chunked body is re-framed on the next hop; a Content-Length beside it would let the
    # two hops disagree on where the request ends (request smuggling).
    drop_length = body_framed_here or "transfer-encoding" in request.headers
    kept = []
    for name, value in request.headers.items():
        lower = name.lower()
        if (
            (drop_length and lower == "content-length")
            or lower in HOP_BY_HOP_HEADERS
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
    # The session cookie is a credential for the gateway only; MLflow never sees it (nor the
    # UI's user cookie, which the gateway sets).
    kept = [
        pair
        for pair in header.split(";")
        if pair.strip() and not pair.strip().split("=", 1)[0].endswith(_OWN_COOKIE_SUFFIXES)
    ]
    return ";".join(kept).strip()


class Forwarder:
    """Forwards requests to the handler tier over one pooled aiohttp session.

    aiohttp, not httpx, on this hop: it costs a quarter of the CPU per call (a C parser, fewer
    layers), and the gateway's overhead is what every MLflow call pays. The session keeps no
    cookies (one caller's upstream Set-Cookie must never ride on another's request), follows no
    redirects, adds no headers of its own and leaves bodies encoded as the handler tier sent them.
    """

    def __init__(
        self,
        upstream_url: str,
        identity_secret: bytes,
        *,
        timeout_seconds: float,
        connect_timeout_seconds: float = 5.0,
        max_connections: int = 200,
        observe: Callable[[float], None] = lambda seconds: None,
    ):
        self.upstream = upstream_url.rstrip("/")
        self._observe = observe  # time to the handler tier's response headers
        self._secret = identity_secret
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_seconds, sock_read=timeout_seconds
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def forward(self, request: Request, principal: Principal) -> Response:
        """Send `request` upstream as `principal` and pass the answer back.

        Answers of known small size (most MLflow JSON) are read whole and sent in one piece;
        everything else (artifacts, unknown lengths) streams through.
        """
        body = await _request_body(request)
        headers = self._upstream_headers(request, principal, isinstance(body, bytes))
        started = time.perf_counter()
        try:
            response = await self._session_now().request(
                request.method,
                self._upstream_url(request),
                headers=headers,
                data=body,
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError):
            _logger.warning("Upstream timed out: %s %s", request.method, request.url.path)
            raise upstream_timeout("The MLflow server did not answer in time.") from None
        except aiohttp.ClientError as exc:
            _logger.warning("Upstream unreachable: %s", exc)
            raise upstream_unavailable("The MLflow server is not reachable.") from None
        self._observe(time.perf_counter() - started)
        if response.status >= 500 and not _is_json(response):
            # A crash page (HTML, a traceback) means nothing to an MLflow client: say it in JSON.
            _logger.warning(
                "Upstream answered %s without JSON: %s %s",
                response.status,
                request.method,
                request.url.path,
            )
            response.release()
            raise upstream_failed(response.status)
        # Raw pairs keep repeated headers (Set-Cookie) and the upstream's exact values.
        headers = _response_headers(response)
        if response.content_length is not None and response.content_length <= _READ_WHOLE:
            try:
                body = await response.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                _logger.warning("Upstream failed mid-body on %s: %s", request.url.path, exc)
                raise upstream_unavailable("The MLflow server's answer was cut short.") from None
            finally:
                response.release()
            whole = Response(body, status_code=response.status)
            whole.raw_headers = headers
            return whole
        streamed = StreamingResponse(
            _relay(response, request),
            status_code=response.status,
            background=BackgroundTask(_release, response),
        )
        streamed.raw_headers = headers
        return streamed

    async def healthy(self) -> bool:
        """Whether the handler tier answers its health check (the readiness probe's question)."""
        try:
            async with self._session_now().get(
                f"{self.upstream}/health", timeout=aiohttp.ClientTimeout(total=3.0)
            ) as response:
                return response.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _session_now(self) -> aiohttp.ClientSession:
        # Created on first use: a session belongs to the event loop that serves the gateway.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    use_dns_cache=True,
                    keepalive_timeout=_UPSTREAM_IDLE_SECONDS,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=self._timeout,
                auto_decompress=False,
                trust_env=False,  # the handler tier is on a private address: never via a proxy
                skip_auto_headers=_NO_AUTO_HEADERS,
            )
        return self._session

    def _upstream_url(self, request: Request) -> yarl.URL:
        # raw_path keeps the client's encoding, so the handler tier routes exactly what was sent.
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        query = request.scope.get("query_string", b"")
        target = (raw_path + (b"?" + query if query else b"")).decode("latin-1")
        return yarl.URL(self.upstream + target, encoded=True)

    def _upstream_headers(
        self, request: Request, principal: Principal, body_framed_here: bool
    ) -> list[tuple[str, str]]:
        headers = forwardable_request_headers(request, body_framed_here=body_framed_here)
        identity = sign_identity(
            principal,
            request.method,
            request.scope["path"],
            self._secret,
            query=request.scope.get("query_string", b"").decode("latin-1"),
        )
        headers.append((IDENTITY_HEADER, identity))
        if request.client is not None:
            headers.append(("x-forwarded-for", request.client.host))
        headers.append(("x-forwarded-proto", request.url.scheme))
        return headers


_READ_WHOLE = 256 * 1024  # bytes: answers up to this size are read whole, bigger ones stream

# aiohttp adds these unless told not to; the client's own (if any) are forwarded instead.
_NO_AUTO_HEADERS = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})


async def _request_body(request: Request):
    """The body to send: the bytes read (a route with a limit), a stream (uploads) or None."""
    # A body is present only when the client announced one; GETs usually have none.
    if "content-length" not in request.headers and "transfer-encoding" not in request.headers:
        return None
    if body_limit(request.scope) is None:
        return _stream(request)
    return await request.body()  # read at most the route's limit, or already read by a step


async def _stream(request: Request):
    # The client's body, streamed as it arrives.
    async for chunk in request.stream():
        if chunk:
            yield chunk


async def _release(response: aiohttp.ClientResponse) -> None:
    response.release()  # async, so Starlette does not run it on a worker thread


async def _relay(response: aiohttp.ClientResponse, request: Request):
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    except (TimeoutError, aiohttp.ClientError) as exc:
        # The status line is sent already: all that is left is to cut the body short.
        _logger.warning("Upstream failed mid-body on %s: %s", request.url.path, exc)
        raise


def _is_json(response: aiohttp.ClientResponse) -> bool:
    return response.content_type in ("application/json", "application/problem+json")


def _response_headers(response: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    return [
        (name.lower(), value)
        for name, value in response.raw_headers
        if name.lower().decode("latin-1") not in HOP_BY_HOP_HEADERS
    ]
