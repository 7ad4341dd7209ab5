"""The handler tier: MLflow's own server app, reachable only with the gateway's identity header.

Run it with ``uvicorn store.handler.app:app``. Every request except ``GET /health`` must carry a
valid `X-Cedarflow-Identity` header (see store/handler/identity.py); the principal it names is
bound for the request so the stores attribute writes to it. Anything else gets a 401 in MLflow's
JSON error shape, so the handler tier's port gives nothing to a caller who goes around the gateway.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from store.handler.identity import (
    IDENTITY_HEADER,
    SECRET_ENV_VAR,
    InvalidIdentity,
    Principal,
    bind_principal,
    current_principal,
    identity_secret_from_env,
    verify_identity_claims,
)

_logger = logging.getLogger(__name__)

_HEALTH_PATH = "/health"
_HEADER_KEY = IDENTITY_HEADER.lower().encode()
# Seconds past a header's expiry after which its nonce is forgotten (beyond any clock skew).
_FORGET_AFTER = 30


class ReplayGuard:
    """Remembers the nonces of accepted headers until they expire: each header is used once.

    Per process; the method/path binding and the short validity cover the rest.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self._seen: dict[str, int] = {}  # insertion order is (nearly) expiry order
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def first_use(self, nonce: str, expires_at: int) -> bool:
        """True the first time a nonce is seen (and records it), False on a replay."""
        with self._lock:
            self._forget_expired(int(time.time()) - _FORGET_AFTER)
            if nonce in self._seen:
                return False
            if len(self._seen) >= self._max_entries:
                # Full of live nonces: drop the oldest rather than grow without bound.
                self._seen.pop(next(iter(self._seen)))
            self._seen[nonce] = expires_at
            return True

    def _forget_expired(self, horizon: int) -> None:
        # Expired headers are refused anyway, so their nonces need not be kept.
        while self._seen:
            oldest = next(iter(self._seen))
            if self._seen[oldest] >= horizon:
                return
            del self._seen[oldest]


class IdentityMiddleware:
    """Refuses requests without a valid identity header; binds the principal otherwise."""

    def __init__(
        self,
        app: ASGIApp,
        secret: bytes | None,
        replay_guard: ReplayGuard | None = None,
        on_startup: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.secret = secret
        self.replay_guard = replay_guard if replay_guard is not None else ReplayGuard()
        self.on_startup = on_startup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            # WebSockets carry no identity header we could check: refuse them.
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        if scope["method"] == "GET" and scope["path"] == _HEALTH_PATH:
            await self.app(scope, receive, send)
            return
        try:
            principal = self._verify(scope)
        except InvalidIdentity as exc:
            _logger.warning("Refused %s %s: %s", scope["method"], scope["path"], exc)
            await _send_unauthenticated(send)
            return
        with bind_principal(principal):
            await self.app(scope, receive, send)

    def _verify(self, scope: Scope) -> Principal:
        if not self.secret:
            raise InvalidIdentity("no identity secret configured")
        values = [v for k, v in scope.get("headers", []) if k.lower() == _HEADER_KEY]
        if len(values) != 1:
            raise InvalidIdentity("missing or repeated identity header")
        claims = verify_identity_claims(
            values[0].decode("latin-1"),
            scope["method"],
            scope["path"],
            self.secret,
            query=scope.get("query_string", b"").decode("latin-1"),
        )
        if not self.replay_guard.first_use(claims.nonce, claims.expires_at):
            raise InvalidIdentity("identity header already used")
        return claims.principal

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.secret:
            await self.app(scope, self._starting(receive), send)
            return
        # Without a secret every call would be refused: fail the start instead, loudly.
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send(
                {
                    "type": "lifespan.startup.failed",
                    "message": f"{SECRET_ENV_VAR} is not set; the handler tier cannot start",
                }
            )

    def _starting(self, receive: Receive) -> Receive:
        """`receive`, running `on_startup` (off the event loop) before the startup is passed on."""
        if self.on_startup is None:
            return receive

        async def receive_after_startup() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await asyncio.to_thread(self.on_startup)
            return message

        return receive_after_startup


async def _send_unauthenticated(send: Send) -> None:
    body = json.dumps(
        {
            "error_code": "UNAUTHENTICATED",
            "message": "This server only accepts requests that come through the gateway.",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _answer_uncaught_mlflow_errors() -> None:
    """An MlflowException that a handler does not catch itself (MLflow's dataset records and
    experiment-ids handlers) is answered as MLflow's other handlers answer it, not as a 500."""
    from flask import Response
    from mlflow.exceptions import MlflowException
    from mlflow.server import app as flask_app

    def answer(exc: MlflowException) -> Response:
        return Response(
            exc.serialize_as_json(),
            status=exc.get_http_status_code(),
            mimetype="application/json",
        )

    flask_app.register_error_handler(MlflowException, answer)


def _answer_storage_errors(mlflow_app) -> None:
    """A write or read the artifact store refuses (disk full, read-only folder, missing bucket,
    denied key) is MLflow's JSON 503, not a bare 500; the details stay in this tier's log."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    async def answer(request: Request, exc: Exception) -> JSONResponse:
        _logger.error("Artifact store failed on %s %s", request.method, request.url.path,
                      exc_info=exc)  # fmt: skip
        return JSONResponse(
            {"error_code": "TEMPORARILY_UNAVAILABLE", "message": _storage_message(exc)},
            status_code=503,
        )

    for kind in (OSError, BotoCoreError, ClientError, Boto3Error):
        mlflow_app.add_exception_handler(kind, answer)


def _storage_message(exc: Exception) -> str:
    """What the caller may know: the reason, never a path, a bucket or a key."""
    cause = _client_error(exc)
    if cause is not None:
        reason = cause.response.get("Error", {}).get("Code") or "refused"
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    else:
        reason = type(exc).__name__
    return f"The artifact store could not complete the call ({reason})."


def _client_error(exc: BaseException):
    """The S3 error under a boto3 transfer error (boto3 raises it while handling that one)."""
    from botocore.exceptions import ClientError

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ClientError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _stamp_authenticated_user() -> None:
    """MLflow's review-queue handlers take a queue's owner and a reviewer's name from
    `flask.g.mlflow_authenticated_user`; without it they take the client's word."""
    from flask import g
    from mlflow.server import app as flask_app

    if getattr(flask_app, "_cedarflow_stamps_user", False):
        return

    def stamp() -> None:
        principal = current_principal()
        if principal is not None and principal.kind != "anonymous":
            g.mlflow_authenticated_user = principal.username

    flask_app.before_request(stamp)
    flask_app._cedarflow_stamps_user = True


def create_handler_app(secret: bytes | None = None, mlflow_app: ASGIApp | None = None) -> ASGIApp:
    """MLflow's server app behind the identity check (secret defaults to the environment's)."""
    on_startup = None
    if mlflow_app is None:
        from mlflow.server import app as flask_app
        from mlflow.server.fastapi_app import app as mlflow_app

        from store.handler.fast_path import with_fast_path

        on_startup = _open_stores
        _answer_uncaught_mlflow_errors()
        _answer_storage_errors(mlflow_app)
        _stamp_authenticated_user()
        mlflow_app = with_fast_path(mlflow_app, flask_app)
    use_guarded_webhook_delivery()
    if secret is None:
        secret = identity_secret_from_env()
    return IdentityMiddleware(mlflow_app, secret, on_startup=on_startup)


def _open_stores() -> None:
    """Open the stores at start, as `mlflow server` does: the tracking store makes the Default
    experiment, which the gateway must find to decide a first call on it."""
    from mlflow.server.handlers import _get_model_registry_store, _get_tracking_store

    _get_tracking_store()
    _get_model_registry_store()


def use_guarded_webhook_delivery() -> None:
    """MLflow's handlers deliver webhooks through the names they imported: ours instead."""
    from mlflow.server import handlers

    from store.webhooks import delivery

    handlers.deliver_webhook = delivery.deliver_webhook
    handlers.test_webhook = delivery.test_webhook


app = create_handler_app()
