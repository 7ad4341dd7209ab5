"""One request path, written once. A call to the gateway goes, top to bottom:

    route         routing/: one route table matches (method, path) to a row, MLflow's or ours
    authenticate  authn/: a bearer token or the browser session (rows answered without
                  credentials stop before: probes, sign-in, the dev identity provider, UI files)
    parse         routing/parse.py: read the request as MLflow's handler will, name its resources
    resolve       the facts source: each resource's experiment or registered model and its role
                  bindings, the registry's facts (authz/resolver.py over store/ownership.py)
    decide        authz/decide.py (Cedar on policies/), then the model-reader rule
                  (authz/model_readers.py) and a GraphQL query per root field
    narrow        a search's unreadable experiment ids are dropped (all of them: answered empty)
    forward       proxy.py, to MLflow's handler tier, with the caller's identity signed
    filter        filters.py: list and search answers keep only what the caller may read
    audit         observe/: one audit line per decision, metrics

`Pipeline.decide` (parse → resolve → decide → narrow → audit) is also what `tools/simulate`
runs, with its own facts source (a bindings file or the table) and no forwarding, so the
simulator and the gateway cannot disagree. `Gateway.handle` is the whole path over HTTP.
Denials are 403 `PERMISSION_DENIED` naming the action and what the caller named (403, not 404,
for what the caller may not see); anything that cannot be read is refused before a decision.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from gateway.authn.bearer import Authenticator
from gateway.authn.browser import BrowserLogin, SignedOutFromUi, login_redirect, wants_html
from gateway.authn.principal import ANONYMOUS, Authenticated
from gateway.authz.datasets import dataset_ids, expand_datasets
from gateway.authz.decide import Authorizer, BindingsLookup, Decision, RequestDecision
from gateway.authz.model_readers import ArtifactRead, artifact_read, as_model_reader, model_refs
from gateway.errors import AuthenticationError, GatewayError, permission_denied
from gateway.filters import GRAPHQL, ResponseFilters, narrowed_request
from gateway.observe.audit import AuditLog, Narrowing, recorded_decision
from gateway.observe.metrics import Metrics
from gateway.permissions_api import PermissionsApi
from gateway.proxy import Forwarder
from gateway.routing import match_route
from gateway.routing.graphql import (
    graphql_request_refs,
    parse_graphql_request,
    run_model_version_keys,
)
from gateway.routing.model import ANSWER, OPEN, PERMISSIONS, Endpoint, Route
from gateway.routing.parse import (
    EMPTY_SEARCH,
    ParsedRequest,
    ResourceRef,
    parse_request,
    reads_body,
)
from gateway.routing.tables.gateway import LOGOUT_PATH
from gateway.ui_answers import PRINCIPAL_STATE
from store.handler.identity import Principal
from store.vocabulary import EXPERIMENT

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    """What a decision reads of one HTTP request."""

    method: str
    raw_path: str  # still percent-encoded, as the client sent it
    query: bytes | str = b""
    headers: Iterable[tuple] | Mapping[str, str] = ()
    body: bytes = b""  # read only for rows whose parameters or resources are in it


class Facts(Protocol):
    """Where a decision's facts come from: the table (gateway, simulator) or a bindings file."""

    async def prefetch(self, refs: Iterable[ResourceRef]) -> BindingsLookup:
        """Bindings (or MISSING, or None: unresolvable) of each reference's experiment/model."""

    async def registry_context(self, parsed: ParsedRequest) -> dict | None:
        """The Cedar context of a registry call (authz/registry_facts.py)."""

    async def models_registered_from(self, read: ArtifactRead) -> tuple[str, ...]:
        """Registered models with a version whose files `read` reads (authz/model_readers.py)."""

    async def dataset_experiments(
        self, dataset_ids: tuple[str, ...]
    ) -> Mapping[str, tuple[str, ...] | None]:
        """The experiments each dataset is linked to (None: no such dataset, or unknown)."""


@dataclass(frozen=True)
class Verdict:
    """One request decided (or refused), with what the decision was made on."""

    parsed: ParsedRequest | None = None
    refusal: GatewayError | None = None  # refused before a decision, or a query not readable
    result: RequestDecision | None = None
    context: dict | None = None  # the registry facts the policies read
    graphql: tuple[Decision, ...] = ()  # a non-administrator's query, per root field
    # where that query's answer holds runs' model versions, each decided on its model
    run_versions: tuple[tuple[str, str, str], ...] = ()
    lookup: BindingsLookup | None = field(default=None, compare=False)
    undecided: Route | None = None  # a row the gateway answers without this decision
    empty_search: bool = False  # a search sent with an empty list: nothing to decide or read

    @property
    def denial(self) -> Decision | None:
        """The deciding denial: the request's, or the first GraphQL root field's."""
        if self.result is None:
            return None
        if not self.result.allowed:
            return self.result.decision
        return next((d for d in self.graphql if not d.allowed), None)

    @property
    def answered_empty(self) -> bool:
        """A search names no experiment, or only unreadable ones: answered empty, never
        forwarded."""
        if self.empty_search:
            return self.refusal is None
        return self.refusal is None and bool(self.result and self.result.narrowed_to_nothing)

    @property
    def allowed(self) -> bool:
        """As the audit line records it (a search answered empty is a denial)."""
        ok = self.refusal is None and self.result is not None and self.denial is None
        return ok and not self.answered_empty

    def error(self) -> GatewayError | None:
        """What the caller is answered instead of the call, if anything."""
        if self.refusal is not None:
            return self.refusal
        denial = self.denial
        return None if denial is None else permission_denied(denial.action, describe(denial))


def describe(decision: Decision) -> str:
    """What a denial names: the resource as the caller named it, never whose it is."""
    ref = decision.resource
    if ref is None:
        return "this resource"
    if ref.named is not None:  # a dataset decided on its experiments: never name those
        kind, named = ref.named
        return f"{kind.replace('_', ' ')} '{named}'"
    if ref.kind == EXPERIMENT and ref.id == "0":  # where a script without set_experiment logs
        return (
            "experiment '0' (the Default experiment, which needs a grant: "
            "call mlflow.set_experiment('<name>') to work in an experiment of your own)"
        )
    return f"{ref.kind.replace('_', ' ')} '{ref.id}'"


class Pipeline:
    """parse → resolve → decide → narrow → audit, for the gateway and the simulator alike."""

    def __init__(
        self,
        authorizer: Authorizer,
        facts: Facts,
        *,
        audit: AuditLog | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.authorizer = authorizer
        self.facts = facts
        self.audit = audit
        self.metrics = metrics

    async def decide(self, call: Call, principal: Principal, request_id: str = "-") -> Verdict:
        started = time.perf_counter()
        try:
            route = match_route(call.method, call.raw_path).route
            if not route.decided:
                return Verdict(undecided=route)
            parsed = parse_request(call.method, call.raw_path, call.query, call.headers, call.body)
        except GatewayError as refusal:
            self._record_refusal(call, principal, request_id, refusal)
            return Verdict(refusal=refusal)
        if EMPTY_SEARCH in parsed.flags:
            self._count(parsed.action, "empty")
            return Verdict(parsed, empty_search=True)
        parsed = await self._with_datasets(parsed)
        lookup = await self.facts.prefetch(parsed.resources)
        context = await self.facts.registry_context(parsed)
        result = self.authorizer.authorize(principal, parsed, lookup, context)
        if not result.allowed:
            result, lookup = await self._as_model_reader(principal, parsed, result, lookup)
        self._record(call, principal, request_id, result, time.perf_counter() - started)
        verdict = Verdict(parsed, result=result, context=context, lookup=lookup)
        if result.allowed and parsed.filter == GRAPHQL:
            return await self._decide_graphql(call, principal, request_id, verdict)
        return verdict

    async def _with_datasets(self, parsed: ParsedRequest) -> ParsedRequest:
        """Each dataset the request names, replaced by what it is decided on (authz/datasets.py)."""
        ids = dataset_ids(parsed.resources)
        if not ids:
            return parsed
        linked = await self.facts.dataset_experiments(ids)
        return replace(parsed, resources=expand_datasets(parsed.resources, linked))

    async def _as_model_reader(
        self,
        principal: Principal,
        parsed: ParsedRequest,
        result: RequestDecision,
        lookup: BindingsLookup,
    ) -> tuple[RequestDecision, BindingsLookup]:
        read = artifact_read(parsed)
        models = await self.facts.models_registered_from(read) if read else ()
        if not models:
            return result, lookup
        found = await self.facts.prefetch(model_refs(models))
        decided = as_model_reader(self.authorizer, principal, parsed, result, models, found)
        return decided, _either(lookup, found)

    async def _decide_graphql(
        self, call: Call, principal: Principal, request_id: str, verdict: Verdict
    ) -> Verdict:
        """Each resource a query reads, decided with its root field's REST action, up to the
        first denial. An administrator's query is only read (MLflow answers the rest)."""
        try:
            if set(principal.groups) & set(self.authorizer.admin_groups):
                parse_graphql_request(call.method, call.body)
                return verdict
            refs = graphql_request_refs(call.method, call.body)
            run_versions = run_model_version_keys(call.method, call.body)
        except GatewayError as refusal:
            self._record_refusal(call, principal, request_id, refusal)
            return replace(verdict, refusal=refusal)
        lookup = await self.facts.prefetch(refs)
        decisions: list[Decision] = []
        for decision in self.authorizer.decide_each(principal, "GraphQL", refs, lookup):
            decisions.append(decision)
            self._audit(call, principal, request_id, decision, 0.0)
            if not decision.allowed:
                break
        return replace(
            verdict,
            graphql=tuple(decisions),
            run_versions=run_versions,
            lookup=_either(verdict.lookup, lookup),
        )

    def _record(self, call, principal, request_id, result: RequestDecision, elapsed: float):
        recorded = recorded_decision(result)  # a search answered empty is recorded as a deny
        if self.metrics is not None:
            self.metrics.observe_decide(elapsed)
        self._audit(call, principal, request_id, recorded, elapsed, Narrowing.of(result))

    def _audit(self, call, principal, request_id, decision, elapsed, narrowing=None) -> None:
        if self.metrics is not None:
            self.metrics.count_decision(decision.action, "allow" if decision.allowed else "deny")
        if self.audit is not None:
            self.audit.decision(
                request_id, principal, decision, method=call.method, path=call.raw_path,
                latency_ms=elapsed * 1000, narrowing=narrowing,
            )  # fmt: skip

    def _count(self, action: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.count_decision(action, outcome)

    def _record_refusal(self, call, principal, request_id, refusal: GatewayError) -> None:
        self._count("-", "refused")
        if self.audit is not None:
            self.audit.refusal(request_id, principal, call.method, call.raw_path, refusal)


def _either(first: BindingsLookup | None, second: BindingsLookup) -> BindingsLookup:
    """A lookup answering from `first`, else from `second`."""
    if first is None:
        return second

    def lookup(ref: ResourceRef) -> object:
        found = first(ref)
        return found if found is not None else second(ref)

    return lookup


@dataclass
class Gateway:
    """The whole request path over HTTP, one collaborator per step."""

    authenticator: Authenticator
    pipeline: Pipeline
    forwarder: Forwarder
    filters: ResponseFilters
    permissions: PermissionsApi
    answers: Mapping[str, Endpoint]  # the gateway's own calls, by the action of their row
    browser: BrowserLogin | None = None
    after_success: Callable[[ParsedRequest], None] = lambda parsed: None

    async def handle(self, request: Request) -> Response:
        route = _route_of(request)  # None: refused after authentication, like any call
        if route is not None and route.serve == OPEN:
            return await self._answer(route, request)
        if route is not None and route.anonymous and not self._signs_in_first(request):
            return await self.forwarder.forward(request, ANONYMOUS)
        try:
            caller, set_cookie = await self._authenticate(request)
        except AuthenticationError as exc:
            return self._unauthenticated(request, exc)
        await self.permissions.remember(caller.principal)
        if route is not None and route.serve == PERMISSIONS:
            response = await self.permissions.handle(request, caller.principal, request_id(request))
        else:
            response = await self._decided(request, caller.principal)
        if set_cookie is not None:
            response.raw_headers.append((b"set-cookie", set_cookie.encode("latin-1")))
        return response

    async def _decided(self, request: Request, principal: Principal) -> Response:
        call = await call_of(request)
        verdict = await self.pipeline.decide(call, principal, request_id(request))
        error = verdict.error()
        if error is not None:
            raise error
        if verdict.answered_empty:
            return JSONResponse({})  # what MLflow answers for a search with no readable rows
        parsed, result = verdict.parsed, verdict.result
        if parsed.route.serve == ANSWER:
            setattr(request.state, PRINCIPAL_STATE, principal)  # calls that name the caller
            return await self._answer(parsed.route, request)
        if result.dropped:
            request = narrowed_request(request, call, parsed, result.kept)
        response = await self.forwarder.forward(request, principal)
        if response.status_code == 200:
            self.after_success(parsed)
            if parsed.filter and parsed.filter != GRAPHQL:  # GraphQL was decided per field
                response = await self.filters.apply(request, call, parsed, principal, response)
            elif verdict.run_versions:  # a run page's query: versions of readable models only
                versions = verdict.run_versions
                response = await self.filters.run_versions(principal, response, versions)
        return response

    async def _answer(self, route: Route, request: Request) -> Response:
        endpoint = self.answers.get(route.action or "")
        if endpoint is None:  # a part that is off here (the dev identity provider, sign-in)
            raise GatewayError(404, "ENDPOINT_NOT_FOUND", f"{route.action} is not offered here.")
        return await endpoint(request)

    async def _authenticate(self, request: Request) -> tuple[Authenticated, str | None]:
        """A bearer token when one is sent (never CSRF-prone), else the browser's session."""
        browser = self.browser
        if browser is None or "authorization" in request.headers:
            return await self.authenticator.authenticate(request), None
        if not browser.has_session_cookie(request):
            return await self.authenticator.authenticate(request), None
        outcome = await browser.authenticate(request)
        return outcome.caller, outcome.set_cookie

    def _unauthenticated(self, request: Request, exc: AuthenticationError) -> Response:
        client = request.client.host if request.client else "-"
        _logger.info("401 %s %s from %s: %s", request.method, request.url.path, client, exc.reason)
        if self.browser is None or not wants_html(request):
            return exc.to_response()
        if isinstance(exc, SignedOutFromUi):  # ends the IdP's session too, then says so
            return RedirectResponse(LOGOUT_PATH, status_code=303)
        redirect = login_redirect(request)  # a browser navigating: sent to sign in
        if "Set-Cookie" in exc.headers:
            redirect.headers.append("Set-Cookie", exc.headers["Set-Cookie"])
        return redirect

    def _signs_in_first(self, request: Request) -> bool:
        # With browser sign-in on, the UI's page itself sends a stranger to sign in.
        return self.browser is not None and request.scope["path"] == "/"


def _route_of(request: Request) -> Route | None:
    try:
        return match_route(request.method, _raw_path(request)).route
    except GatewayError:
        return None


async def call_of(request: Request) -> Call:
    """The request as the decision reads it; its body is read when the row needs it."""
    raw_path = _raw_path(request)
    try:
        needs_body = reads_body(request.method, raw_path)
    except GatewayError:  # refused by the decision, which reads no body
        needs_body = False
    body = await request.body() if needs_body else b""
    return Call(request.method, raw_path, request.scope["query_string"], request.headers.raw, body)


def request_id(request: Request) -> str:
    found = getattr(request.state, "request_id", None)
    if found is None:
        found = request.state.request_id = uuid.uuid4().hex
    return found


def _raw_path(request: Request) -> str:
    return (request.scope.get("raw_path") or request.scope["path"].encode()).decode("latin-1")
