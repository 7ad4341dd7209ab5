"""The gateway application: builds the request path of gateway/pipeline.py and serves it.

Every request, whatever its path, goes to `Gateway.handle`, which routes it with the one route
table (MLflow's rows and the gateway's own, routing/tables/gateway.py). Before any of it, a
request body is held to its row's size limit (gateway/body_limit.py). A gateway decides every
call with Cedar policies: without a policy folder and the table of role bindings it does not
start. Errors anywhere are GatewayErrors, answered in MLflow's JSON shape by one handler.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.account_answers import AccountAnswers
from gateway.authn.bearer import Authenticator
from gateway.authn.browser import BrowserLogin
from gateway.authn.principal import DEV_TAG
from gateway.authz.decide import Authorizer
from gateway.authz.policies import PolicyStore
from gateway.authz.resolver import Resolver
from gateway.body_limit import BodyLimitMiddleware
from gateway.config import USE_ACCESS, USE_ID, BrowserLoginConfig, GatewayConfig, IssuerConfig
from gateway.devidp.oauth import DevOAuthEndpoints
from gateway.devidp.provider import DEV_CLIENT_ID, DevIdentityProvider, dev_provider_for
from gateway.errors import GatewayError, error_handler, store_unavailable_handler
from gateway.filters import ResponseFilters
from gateway.observe.audit import AuditLog
from gateway.observe.metrics import Metrics
from gateway.permissions_api import PermissionsApi
from gateway.pipeline import Gateway, Pipeline
from gateway.proxy import Forwarder
from gateway.routing.tables.gateway import METRICS_ACTION
from gateway.ui_answers import UiAnswers
from store.bindings import BindingStore
from store.dynamo.errors import StoreUnavailable
from store.dynamo.table import DynamoTable

_logger = logging.getLogger(__name__)

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
NO_POLICIES = (
    "the gateway decides every call with Cedar policies: give it a policy folder "
    "(policies_dir) and the table that holds the role bindings (store_uri)"
)


def create_app(config: GatewayConfig) -> Starlette:
    """The gateway as an ASGI app; refuses a configuration that would decide nothing."""
    dev_idp = dev_provider_for(config)  # refuses a dev provider that would be exposed
    if config.policies_dir is None or config.store_uri is None:
        raise ValueError(NO_POLICIES)
    policies = PolicyStore(Path(config.policies_dir))  # a broken set never starts
    authorizer = Authorizer(policies, admin_groups=tuple(config.admin_groups))
    table = DynamoTable.from_uri(config.store_uri)
    resolver = Resolver(table, ttl=config.bindings_ttl_seconds)
    audit = AuditLog(config.audit_path)
    metrics = Metrics(dynamodb_reads=lambda: resolver.reads)
    forwarder = Forwarder(
        config.upstream_url,
        config.identity_secret,
        timeout_seconds=config.upstream_timeout_seconds,
        observe=metrics.observe_upstream,
    )
    http = httpx.AsyncClient(follow_redirects=False)  # JWKS and OIDC discovery
    login_config = browser_login_config(config, dev_idp)
    authenticator = Authenticator(config, trusted_issuers(config, dev_idp, login_config), http)
    browser = BrowserLogin(config, login_config, authenticator, http) if login_config else None
    probes = Probes(forwarder, authenticator, table)
    answers = {**probes.endpoints(), METRICS_ACTION: metrics.endpoint}
    answers |= UiAnswers(signs_out=browser is not None).endpoints()
    answers |= AccountAnswers(authorizer, resolver, table).endpoints()
    if browser is not None:
        answers |= browser.endpoints()
    if dev_idp is not None:
        services = [s.client_id for s in config.service_clients]
        answers |= DevOAuthEndpoints(
            dev_idp,
            gateway_url=config.public_url,
            machine_clients=services,
            token_ttl=config.dev_token_ttl_seconds,
        ).endpoints()
    gateway = Gateway(
        authenticator=authenticator,
        pipeline=Pipeline(authorizer, resolver, audit=audit, metrics=metrics),
        forwarder=forwarder,
        filters=ResponseFilters(
            authorizer, resolver.prefetch, forwarder, resolver.dataset_experiments
        ),
        permissions=PermissionsApi(authorizer, resolver, BindingStore(table), audit),
        answers=answers,
        browser=browser,
        after_success=resolver.after_success,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        policies.start()  # hot reload: an edited policy file applies within a second
        try:
            yield
        finally:
            policies.stop()
            await http.aclose()
            await forwarder.aclose()
            audit.close()

    app = Starlette(
        routes=[Route("/{path:path}", gateway.handle, methods=ALL_METHODS)],
        lifespan=lifespan,
        middleware=[Middleware(BodyLimitMiddleware, limits=config.body_limits)],
        exception_handlers={
            GatewayError: error_handler,
            StoreUnavailable: store_unavailable_handler,
            Exception: _internal_error,
        },
    )
    app.state.config = config
    app.state.gateway = gateway
    app.state.dev_idp = dev_idp
    app.state.policies = policies
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
class Probes:
    """Liveness and readiness, for load balancers and the local launcher."""

    forwarder: Forwarder
    authenticator: Authenticator
    table: DynamoTable

    def endpoints(self) -> dict:
        return {"Healthz": self.healthz, "Readyz": self.readyz}

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        upstream_ok = await self.forwarder.healthy()
        table_ok = await run_in_threadpool(self.table.reachable)
        issuers = {
            issuer: await cache.ensure_loaded()
            for issuer, cache in self.authenticator.jwks_caches.items()
        }
        ready = upstream_ok and table_ok and all(issuers.values())
        body = {"status": "ready" if ready else "not ready", "upstream": upstream_ok}
        body |= {"table": table_ok, "issuers": issuers}
        return JSONResponse(body, status_code=200 if ready else 503)


async def _internal_error(request: Request, exc: Exception) -> Response:
    _logger.exception("Unhandled error on %s %s", request.method, request.url.path)
    error = GatewayError(500, "INTERNAL_ERROR", "The gateway failed to handle the call.")
    return error.to_response()
