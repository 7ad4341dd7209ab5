"""The gateway application: every MLflow call is authenticated, authorized, then forwarded.

    request ─▶ authenticate (authn.py) ─▶ authorize (Authorizer) ─▶ forward (proxy.py) ─▶ MLflow

`/healthz` and `/readyz` answer without credentials; so do the dev identity provider (under
`/devidp`, on a loopback gateway without outside issuers only; `404` otherwise), the sign-in
routes (gateway/login.py) and the UI's static files, which a browser loads before it signs in.
Every other path, the whole MLflow API included, needs a valid bearer token or a browser
session cookie (state-changing calls on a cookie must come from the gateway's own origin); a
browser navigating without either is sent to sign in.
`/metrics` takes the same path: authenticated here, then decided and served by the policy step.
Before any of it, a request body is held to its route's size limit (gateway/body_limit.py).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from typing import Protocol

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from gateway.authn.bearer import Authenticator
from gateway.authn.browser import BrowserLogin, login_redirect, wants_html
from gateway.authn.principal import ANONYMOUS, DEV_TAG, Authenticated
from gateway.body_limit import BodyLimitMiddleware
from gateway.config import USE_ACCESS, USE_ID, BrowserLoginConfig, GatewayConfig, IssuerConfig
from gateway.devidp.oauth import DevOAuthEndpoints
from gateway.devidp.provider import DEV_CLIENT_ID, DevIdentityProvider, dev_provider_for
from gateway.errors import AuthenticationError, GatewayError, mlflow_error_response
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
    dev_idp = dev_provider_for(config)  # refuses a dev provider that would be exposed
    upstream_client = httpx.AsyncClient(  # the readiness probe's; MLflow calls use the Forwarder
        timeout=httpx.Timeout(config.upstream_timeout_seconds, connect=5.0),
        follow_redirects=False,
        trust_env=False,  # the handler tier is on a private address: never via a proxy
    )
    forwarder = Forwarder(
        config.upstream_url,
        config.identity_secret,
        timeout_seconds=config.upstream_timeout_seconds,
    )
    jwks_client = httpx.AsyncClient(follow_redirects=False)
    login_config = browser_login_config(config, dev_idp)
    issuers = trusted_issuers(config, dev_idp, login_config)
    authenticator = Authenticator(config, issuers, jwks_client)
    browser = (
        BrowserLogin(config, login_config, authenticator, jwks_client) if login_config else None
    )
    if authorizer is None and config.policies_dir is not None:  # Cedar policies + role bindings
        from gateway.pipeline import PolicyAuthorizer

        authorizer = PolicyAuthorizer.from_config(config)
    gateway = MlflowGateway(
        authenticator=authenticator,
        authorizer=authorizer or AllowAuthenticated(),
        forwarder=forwarder,
        browser=browser,
    )
    probes = Probes(upstream_client, config.upstream_url, gateway.authenticator)

    routes: list[BaseRoute] = [
        Route("/healthz", probes.healthz, methods=["GET"]),
        Route("/readyz", probes.readyz, methods=["GET"]),
    ]
    if dev_idp is not None:
        dev_endpoints = DevOAuthEndpoints(
            dev_idp,
            gateway_url=config.public_url,
            machine_clients=[s.client_id for s in config.service_clients],
            token_ttl=config.dev_token_ttl_seconds,
        )
        routes.append(Mount("/devidp", routes=dev_endpoints.routes()))
    else:  # its sign-in and token endpoints do not exist here, whoever asks
        no_dev_idp = Route("/{path:path}", _no_dev_idp, methods=ALL_METHODS)
        routes.append(Mount("/devidp", routes=[no_dev_idp]))
    if browser is not None:
        routes.extend(browser.routes())
    routes.append(Route("/{path:path}", gateway.handle, methods=ALL_METHODS))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        await upstream_client.aclose()
        await jwks_client.aclose()
        await forwarder.aclose()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(BodyLimitMiddleware, limits=config.body_limits)],
        exception_handlers={Exception: _internal_error},
    )
    app.state.config = config
    app.state.gateway = gateway
    app.state.dev_idp = dev_idp
    return app


def browser_login_config(
    config: GatewayConfig, dev_idp: DevIdentityProvider | None
) -> BrowserLoginConfig | None:
    """The app client browsers sign in with: the configured one, else the dev provider's."""
    if config.browser_login is not None:
        return config.browser_login
    if dev_idp is not None:
        return BrowserLoginConfig(issuer=dev_idp.issuer, client_id=DEV_CLIENT_ID)
    return None


def trusted_issuers(
    config: GatewayConfig,
    dev_idp: DevIdentityProvider | None,
    login: BrowserLoginConfig | None = None,
) -> tuple[IssuerConfig, ...]:
    """The configured issuers, plus the dev provider's when it is on.

    The sign-in app clients are app clients of their issuer, so their tokens are accepted too.
    """
    issuers = list(config.issuers)
    if dev_idp is not None:
        issuers.append(
            IssuerConfig(
                issuer=dev_idp.issuer,
                jwks_url=dev_idp.jwks_url,
                # Machine clients are app clients of the dev pool too.
                client_ids=(DEV_CLIENT_ID, *(s.client_id for s in config.service_clients)),
                token_uses=(USE_ACCESS, USE_ID),
                principal_tag=DEV_TAG,  # fixed: its issuer URL changes with the port
            )
        )
    if login is None:
        return tuple(issuers)
    login_clients = tuple(c for c in (login.client_id, login.cli_client_id) if c)
    for index, issuer in enumerate(issuers):
        if issuer.issuer == login.issuer:
            missing = tuple(c for c in login_clients if c not in issuer.client_ids)
            issuers[index] = replace(issuer, client_ids=issuer.client_ids + missing)
            return tuple(issuers)
    raise ValueError(
        f"browser sign-in uses issuer {login.issuer}, which is not among the trusted issuers"
    )


@dataclass
class MlflowGateway:
    """The MLflow request path, one step per collaborator."""

    authenticator: Authenticator
    authorizer: Authorizer
    forwarder: Forwarder
    browser: BrowserLogin | None = None

    async def handle(self, request: Request) -> Response:
        try:
            if is_public_static(request) and not self._is_signed_in_page(request):
                return await self.forwarder.forward(request, ANONYMOUS)
            caller, set_cookie = await self._authenticate(request)
            request.state.caller = caller
            handle = getattr(self.authorizer, "handle", None)
            if handle is not None:  # the policy step forwards and filters responses itself
                response = await handle(request, caller, self.forwarder)
            else:
                await self.authorizer.authorize(request, caller)
                response = await self.forwarder.forward(request, caller.principal)
            if set_cookie is not None:
                response.raw_headers.append((b"set-cookie", set_cookie.encode("latin-1")))
            return response
        except AuthenticationError as exc:
            _logger.info(
                "401 %s %s from %s: %s",
                request.method,
                request.url.path,
                request.client.host if request.client else "-",
                exc.reason,
            )
            if self.browser is not None and wants_html(request):
                redirect = login_redirect(request)
                if "Set-Cookie" in exc.headers:
                    redirect.headers.append("Set-Cookie", exc.headers["Set-Cookie"])
                return redirect
            return exc.to_response()
        except GatewayError as exc:
            return exc.to_response()

    async def _authenticate(self, request: Request) -> tuple[Authenticated, str | None]:
        """A bearer token when one is sent (never CSRF-prone), else the browser's session."""
        browser = self.browser
        if browser is None or "authorization" in request.headers:
            return await self.authenticator.authenticate(request), None
        if not browser.has_session_cookie(request):
            return await self.authenticator.authenticate(request), None
        outcome = await browser.authenticate(request)
        return outcome.caller, outcome.set_cookie

    def _is_signed_in_page(self, request: Request) -> bool:
        # With browser sign-in on, the UI's page itself sends a stranger to sign in.
        return self.browser is not None and request.scope["path"] == "/"


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


async def _no_dev_idp(request: Request) -> Response:
    return mlflow_error_response(
        404, "ENDPOINT_NOT_FOUND", "This gateway runs no dev identity provider."
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    _logger.exception("Unhandled error on %s %s", request.method, request.url.path)
    return mlflow_error_response(500, "INTERNAL_ERROR", "The gateway failed to handle the call.")
