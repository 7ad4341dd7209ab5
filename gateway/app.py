"""The gateway application: every MLflow call is authenticated, authorized, then forwarded.

    request ─▶ authenticate (authn.py) ─▶ authorize (Authorizer) ─▶ forward (proxy.py) ─▶ MLflow

`/healthz` and `/readyz` answer without credentials; so does the dev identity provider (under
`/devidp`, when configured) and the UI's static files, which a browser loads before it holds a
token. Every other path, the whole MLflow API included, needs a valid bearer token.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Protocol

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from gateway.authn import Authenticator
from gateway.config import USE_ACCESS, USE_ID, GatewayConfig, IssuerConfig
from gateway.devidp import DEV_CLIENT_ID, DevIdentityProvider
from gateway.errors import AuthenticationError, GatewayError, mlflow_error_response
from gateway.principal import ANONYMOUS, Authenticated
from gateway.proxy import Forwarder

_logger = logging.getLogger(__name__)

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class Authorizer(Protocol):
    """Step 2: may this caller make this call? Raise gateway.errors.PermissionDenied if not."""

    async def authorize(self, request: Request, caller: Authenticated) -> None: ...


class AllowAuthenticated:
    """Lets every authenticated caller through (the policy engine replaces it)."""

    async def authorize(self, request: Request, caller: Authenticated) -> None:
        return None


def create_app(config: GatewayConfig, *, authorizer: Authorizer | None = None) -> Starlette:
    """The gateway as an ASGI app."""
    upstream_client = httpx.AsyncClient(
        timeout=httpx.Timeout(config.upstream_timeout_seconds, connect=5.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        follow_redirects=False,
        trust_env=False,  # the handler tier is on a private address: never via a proxy
    )
    jwks_client = httpx.AsyncClient(follow_redirects=False)
    dev_idp = (
        DevIdentityProvider(config.dev_idp_dir, config.dev_issuer) if config.dev_idp_dir else None
    )
    issuers = trusted_issuers(config, dev_idp)
    gateway = MlflowGateway(
        authenticator=Authenticator(config, issuers, jwks_client),
        authorizer=authorizer or AllowAuthenticated(),
        forwarder=Forwarder(config.upstream_url, config.identity_secret, upstream_client),
    )
    probes = Probes(upstream_client, config.upstream_url, gateway.authenticator)

    routes: list[BaseRoute] = [
        Route("/healthz", probes.healthz, methods=["GET"]),
        Route("/readyz", probes.readyz, methods=["GET"]),
    ]
    if dev_idp is not None:
        routes.append(Mount("/devidp", routes=dev_idp.routes()))
    routes.append(Route("/{path:path}", gateway.handle, methods=ALL_METHODS))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        await upstream_client.aclose()
        await jwks_client.aclose()

    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={Exception: _internal_error}
    )
    app.state.config = config
    app.state.gateway = gateway
    app.state.dev_idp = dev_idp
    return app


def trusted_issuers(
    config: GatewayConfig, dev_idp: DevIdentityProvider | None
) -> tuple[IssuerConfig, ...]:
    """The configured issuers, plus the dev provider's when it is on."""
    if dev_idp is None:
        return config.issuers
    dev_issuer = IssuerConfig(
        issuer=dev_idp.issuer,
        jwks_url=dev_idp.jwks_url,
        # Machine clients are app clients of the dev pool too.
        client_ids=(DEV_CLIENT_ID, *(s.client_id for s in config.service_clients)),
        token_uses=(USE_ACCESS, USE_ID),
    )
    return (*config.issuers, dev_issuer)


@dataclass
class MlflowGateway:
    """The MLflow request path, one step per collaborator."""

    authenticator: Authenticator
    authorizer: Authorizer
    forwarder: Forwarder

    async def handle(self, request: Request) -> Response:
        try:
            if is_public_static(request):
                return await self.forwarder.forward(request, ANONYMOUS)
            caller = await self.authenticator.authenticate(request)
            request.state.caller = caller
            await self.authorizer.authorize(request, caller)
            return await self.forwarder.forward(request, caller.principal)
        except AuthenticationError as exc:
            _logger.info(
                "401 %s %s from %s: %s",
                request.method,
                request.url.path,
                request.client.host if request.client else "-",
                exc.reason,
            )
            return exc.to_response()
        except GatewayError as exc:
            return exc.to_response()


def is_public_static(request: Request) -> bool:
    """The UI page and its static files: readable without a token so the browser can load."""
    if request.method not in ("GET", "HEAD"):
        return False
    path = request.scope["path"]
    if ".." in path or "\\" in path or "//" in path:
        return False
    return path in ("/", "/favicon.ico") or path.startswith("/static-files/")


@dataclass
class Probes:
    """Liveness and readiness, for load balancers and the local launcher."""

    upstream_client: httpx.AsyncClient
    upstream_url: str
    authenticator: Authenticator

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        upstream_ok = await self._upstream_healthy()
        issuers = {
            issuer: await cache.ensure_loaded()
            for issuer, cache in self.authenticator.jwks_caches.items()
        }
        ready = upstream_ok and all(issuers.values())
        body = {"status": "ready" if ready else "not ready", "upstream": upstream_ok}
        body["issuers"] = issuers
        return JSONResponse(body, status_code=200 if ready else 503)

    async def _upstream_healthy(self) -> bool:
        try:
            response = await self.upstream_client.get(
                f"{self.upstream_url.rstrip('/')}/health", timeout=3.0
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200


async def _internal_error(request: Request, exc: Exception) -> Response:
    _logger.exception("Unhandled error on %s %s", request.method, request.url.path)
    return mlflow_error_response(500, "INTERNAL_ERROR", "The gateway failed to handle the call.")
