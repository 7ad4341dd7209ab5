"""Request bodies: a size limit per route, enforced before and while a body is read.

    request ─▶ BodyLimitMiddleware ─▶ the app (sign-in, dev IdP, MLflow calls)

A body whose `Content-Length` exceeds its route's limit is answered 413 before a byte of it is
read; a chunked body is counted as it is read and the read fails at the limit (413 as well), so
the gateway holds at most one limit's worth of any body. The rest of a refused body is discarded
by the server as it arrives (the connection stays usable, so the client reads the 413).

Limits (GatewayConfig.body_limits):
- the gateway's calls answered without credentials (sign-in, the dev identity provider's
  forms; routing/tables/gateway.py): `form`;
- MLflow calls that carry bulk data (LogBatch, LogInputs, traces and OTLP spans, GraphQL,
  dataset records, the UI's small-file upload): `large`;
- artifact uploads (`PUT .../mlflow-artifacts/artifacts/...`): no limit, they stream through;
- every other call (the MLflow JSON API, the permissions API, ...): `json`.
Calls with a limit are forwarded as the exact bytes that were read, with their Content-Length.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config import MIB, BodyLimits
from gateway.errors import GatewayError
from gateway.routing import match_route
from gateway.routing.model import OPEN

# The scope key under which the middleware leaves the request's limit (None: streamed).
LIMIT_KEY = "cedarflow.body_limit"

# MLflow calls whose bodies carry bulk data: metrics/params/tags by the thousand, datasets,
# trace spans, GraphQL queries of the UI, dataset records, the UI's small-file upload.
LARGE_BODY_ACTIONS = frozenset(
    {
        "LogBatch",
        "LogInputs",
        "StartTrace",
        "StartTraceV3",
        "ExportTraces",
        "GraphQL",
        "UpsertDatasetRecords",
        "UploadArtifact",
    }
)


def limit_for(limits: BodyLimits, method: str, raw_path: str) -> int | None:
    """The body limit of one request; None for artifact uploads, which stream unbounded."""
    try:
        route = match_route(method, raw_path).route
    except GatewayError:
        return limits.json  # refused without reading; a body is still held to a limit
    if route.serve == OPEN:
        return limits.form
    if route.action == "UploadArtifact" and route.method == "PUT":
        return None
    if route.action in LARGE_BODY_ACTIONS:
        return limits.large
    return limits.json


class BodyTooLarge(Exception):  # noqa: N818 - named after the HTTP status it stands for
    """A body grew past its route's limit while being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over {limit} bytes")
        self.limit = limit


def body_limit(scope: Scope) -> int | None:
    """The limit the middleware set for this request (None: unbounded, streamed)."""
    return scope.get(LIMIT_KEY)


class BodyLimitMiddleware:
    """Refuses oversized bodies with 413 before reading them, and caps reads of the rest."""

    def __init__(self, app: ASGIApp, limits: BodyLimits | None = None) -> None:
        self.app = app
        self.limits = limits or BodyLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        limit = limit_for(self.limits, scope["method"], raw_path.split("?", 1)[0])
        scope[LIMIT_KEY] = limit
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is _MALFORMED:
            await _send_error(
                scope, send, 400, "BAD_REQUEST", "The Content-Length header is malformed."
            )
            return
        if declared is not None and declared > limit:
            await _send_too_large(scope, send, limit)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _CappedReceive(receive, limit), watched_send)
        except BodyTooLarge:
            if started:  # cannot happen for bounded routes: each reads its body first
                raise
            await _send_too_large(scope, send, limit)


class _CappedReceive:
    """The server's `receive`, failing once the body read so far passes the limit."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self._total = 0

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._total += len(message.get("body", b""))
            if self._total > self._limit:
                raise BodyTooLarge(self._limit)
        return message


_MALFORMED = object()


def _declared_length(scope: Scope) -> int | object | None:
    values = [v for k, v in scope.get("headers", ()) if k.lower() == b"content-length"]
    if not values:
        return None
    if len(set(values)) != 1 or not values[0].strip().isdigit():
        return _MALFORMED
    return int(values[0])


async def _send_too_large(scope: Scope, send: Send, limit: int) -> None:
    await _send_error(
        scope,
        send,
        413,
        "INVALID_PARAMETER_VALUE",
        f"The request body is larger than this call accepts ({_describe(limit)}).",
    )


async def _send_error(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    await GatewayError(status, code, message).to_response()(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _describe(limit: int) -> str:
    if limit >= MIB and limit % MIB == 0:
        return f"{limit // MIB} MiB"
    if limit >= 1024 and limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"
