"""The authorization step of the request path, for every MLflow call after authentication:

    parse (gateway/request_parse.py) ─▶ resolve (resolve.py) ─▶ decide (decide.py)
      ─▶ narrow a search's experiment ids ─▶ forward ─▶ filter the response (filters.py)
      ─▶ audit (audit.py) + metrics (metrics.py)

GraphQL is decided per root field (graphql_check.py) for everyone but administrators.
`GET /metrics` is decided here too, as `GetMetrics` on the workspace (metrics.py), after the
same authentication as every MLflow call.
Refusals of unreadable requests are MLflow JSON 400s; denials are 403 `PERMISSION_DENIED`
naming the action and the resource the caller named, never the policies or others' data
(403, not 404, for what the caller may not see). The permissions API (permissions.py) is
answered here too: it is authenticated like every MLflow call.

Readers of a registered model may download the artifacts of the logged models its versions
were registered from (so `mlflow.pyfunc.load_model("models:/name@alias")` works for them):
when reading a logged model's artifacts is denied on its experiment, the call is decided
again as `GetModelVersionArtifact` on each registered model the logged model's
`mlflow.modelVersions` tag names, each checked against the registry's own record of that
version (its `model_id`), so a forged tag gains nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.authn.principal import Authenticated
from gateway.authz.decide import Authorizer, Decision, RequestDecision, model_version_context
from gateway.authz.policies import PolicyStore
from gateway.authz.registry_facts import TableModelFacts, changes_registry, registry_context
from gateway.authz.resolver import Resolver
from gateway.errors import PermissionDenied
from gateway.filters import ResponseFilters, body_request
from gateway.observe.audit import AuditLog, Narrowing, recorded_decision
from gateway.observe.metrics import METRICS_ACTION, Metrics, metrics_request
from gateway.permissions_api import PermissionsApi, is_permissions_path
from gateway.routing.graphql import check_graphql, graphql_request_refs, parse_graphql_request
from gateway.routing.parse import ParsedRequest, Refusal, ResourceRef, parse_request, reads_body
from store.bindings import BindingStore, remember_user
from store.dynamo import DynamoTable, InvalidValue
from store.identity import Principal
from store.vocabulary import EXPERIMENT, LOGGED_MODEL, REGISTERED_MODEL

_logger = logging.getLogger(__name__)

_MODEL_ARTIFACT_ACTIONS = frozenset(
    {
        "DownloadArtifact",
        "ListArtifacts",
        "GetLoggedModel",
        "ListLoggedModelArtifacts",
        "GetLoggedModelArtifact",
    }
)
# calls after which cached bindings or names of their resource are stale
_CHANGES_BINDINGS = frozenset(
    {
        "DeleteExperiment",
        "RestoreExperiment",
        "UpdateExperiment",
        "RenameRegisteredModel",
        "DeleteRegisteredModel",
    }
)
_CREATES = frozenset({"CreateExperiment", "CreateRegisteredModel"})


@dataclass(frozen=True)
class AuthorizationSettings:
    """What the authorization step needs besides the gateway's own configuration."""

    policies_dir: Path
    store_uri: str  # dynamodb://... (the handler tier's table)
    admin_groups: tuple[str, ...] = ("admins",)
    bindings_ttl_seconds: float = 5.0
    audit_path: Path | None = None  # None = audit lines to stdout


class PolicyAuthorizer:
    """Implements the gateway's authorization seam with Cedar policies and role bindings."""

    def __init__(
        self,
        authorizer: Authorizer,
        resolver: Resolver,
        bindings: BindingStore,
        audit: AuditLog,
        metrics: Metrics | None = None,
    ):
        self.authz = authorizer
        self.resolver = resolver
        self.bindings = bindings
        self.audit = audit
        self.metrics = metrics or Metrics()
        self.filters = ResponseFilters(authorizer, resolver)
        self.permissions = PermissionsApi(authorizer, resolver, bindings, audit)
        self._known_users: set[tuple] = set()

    @classmethod
    def from_settings(cls, settings: AuthorizationSettings) -> PolicyAuthorizer:
        store = PolicyStore(settings.policies_dir)
        store.start()  # PolicyLoadError: a broken set never starts
        table = DynamoTable.from_uri(settings.store_uri)
        return cls(
            Authorizer(store, admin_groups=settings.admin_groups),
            Resolver(table, ttl=settings.bindings_ttl_seconds),
            BindingStore(table),
            AuditLog(settings.audit_path),
        )

    @classmethod
    def from_config(cls, config) -> PolicyAuthorizer:
        """From the gateway's configuration (`policies_dir`, `store_uri`, `audit_path`)."""
        if config.store_uri is None:
            raise ValueError("policies_dir needs store_uri: role bindings live in DynamoDB")
        return cls.from_settings(
            AuthorizationSettings(
                policies_dir=Path(config.policies_dir),
                store_uri=config.store_uri,
                admin_groups=tuple(config.admin_groups),
                bindings_ttl_seconds=config.bindings_ttl_seconds,
                audit_path=config.audit_path,
            )
        )

    # ---- the seam ----------------------------------------------------------------------

    async def authorize(self, request: Request, caller: Authenticated) -> None:
        """Decide only (for a gateway that forwards by itself): calls whose response must be
        filtered or narrowed are refused here, since nothing would filter them."""
        outcome = await self._decide(request, caller.principal)
        if isinstance(outcome, Response):
            raise PermissionDenied(json.loads(outcome.body)["message"])
        parsed, result = outcome
        if parsed.filter or result.dropped:
            raise PermissionDenied(f"{parsed.action} needs the response filters.")

    async def handle(self, request: Request, caller: Authenticated, forwarder) -> Response:
        """Decide, forward and filter one MLflow call."""
        principal = caller.principal
        await self._remember(principal)
        if is_permissions_path(request.scope["path"]):
            return await self.permissions.handle(request, principal, _request_id(request))
        outcome = await self._decide(request, principal)
        if isinstance(outcome, Response):
            return outcome
        parsed, result = outcome
        if parsed.action == METRICS_ACTION:
            return await self.metrics.endpoint(request)
        if parsed.filter == "graphql":
            refused = await self._check_graphql(request, principal)
            if refused is not None:
                return refused
        if result.narrowed_to_nothing:
            return JSONResponse({})  # what MLflow answers for a search with no readable rows
        if result.dropped:
            request = narrowed_request(request, parsed, result.kept)
        started = time.perf_counter()
        response = await forwarder.forward(request, principal)
        self.metrics.observe_upstream(time.perf_counter() - started)
        if response.status_code == 200:
            self._after_success(parsed)
            if parsed.filter and parsed.filter != "graphql":  # GraphQL was checked per field
                response = await self.filters.apply(request, parsed, principal, response, forwarder)
        return response

    # ---- steps -------------------------------------------------------------------------

    async def _decide(
        self, request: Request, principal: Principal
    ) -> tuple[ParsedRequest, RequestDecision] | Response:
        started = time.perf_counter()
        method = request.method
        raw_path = (request.scope.get("raw_path") or request.scope["path"].encode()).decode(
            "latin-1"
        )
        try:
            parsed = metrics_request(method, raw_path)  # the gateway's own call, not MLflow's
            if parsed is None:
                body = await request.body() if reads_body(method, raw_path) else b""
                parsed = parse_request(
                    method, raw_path, request.scope["query_string"], request.headers.raw, body
                )
        except Refusal as refusal:
            return self._refused(request, principal, raw_path, refusal)
        lookup = await self.resolver.prefetch(parsed.resources)
        context = await self._context(parsed)
        result = self.authz.authorize(principal, parsed, lookup, context)
        if not result.allowed and parsed.action in _MODEL_ARTIFACT_ACTIONS:
            result = await self._as_model_reader(principal, parsed, result)
        elapsed = time.perf_counter() - started
        self.metrics.observe_decide(elapsed)
        self.metrics.dynamodb_reads = self.resolver.reads
        recorded = recorded_decision(result)  # a search answered empty is recorded as a deny
        self.metrics.count_decision(parsed.action, "allow" if recorded.allowed else "deny")
        self.audit.decision(
            _request_id(request),
            principal,
            recorded,
            method=method,
            path=raw_path,
            latency_ms=elapsed * 1000,
            narrowing=Narrowing.of(result),
        )
        if not result.allowed:
            ref = result.decision.resource
            return _denied(parsed.action, _describe(ref))
        return parsed, result

    async def _check_graphql(self, request: Request, principal: Principal) -> Response | None:
        """Every resource a GraphQL query reads, decided with its REST action (graphql_check).

        Administrators' queries are only checked to be readable (MLflow fails on the rest).
        """
        path = request.scope["path"]
        try:
            body = await request.body() if request.method == "POST" else b""
            if self._is_admin(principal):
                parse_graphql_request(request.method, body)
                return None
            refs = graphql_request_refs(request.method, body)
        except Refusal as refusal:
            return self._refused(request, principal, path, refusal)
        lookup = await self.resolver.prefetch(refs)
        check = check_graphql(self.authz, principal, refs, lookup)
        for decision in check.decisions:
            self.audit.decision(
                _request_id(request), principal, decision, method=request.method, path=path,
                latency_ms=0.0,
            )  # fmt: skip
            self.metrics.count_decision(decision.action, "allow" if decision.allowed else "deny")
        denied = check.denied
        if denied is not None:
            return _denied(denied.action, _describe(denied.resource))
        return None

    def _refused(
        self, request: Request, principal: Principal, path: str, refusal: Refusal
    ) -> Response:
        """A request refused before (or instead of) a decision: audited, answered in JSON."""
        self.metrics.count_decision("-", "refused")
        self.audit.write(
            {
                "type": "refusal",
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "request_id": _request_id(request),
                "principal": principal.subject,
                "username": principal.username,
                "method": request.method,
                "path": path,
                "status": refusal.status,
                "message": refusal.message,
            }
        )
        return JSONResponse(refusal.to_json(), refusal.status)

    async def _context(self, parsed: ParsedRequest) -> dict | None:
        """The facts registry policies read (registry_facts.py); fresh for registry changes."""
        if parsed.registry_call is not None and changes_registry(parsed.action):
            facts = TableModelFacts(self.resolver.ownership)
            return await asyncio.to_thread(registry_context, parsed, facts)
        if parsed.model_version is None:
            return None
        name, version = parsed.model_version
        facts = self.resolver.cached_model_version(name, version)
        if facts is None:
            try:
                facts = await asyncio.to_thread(self.resolver.model_version, name, version)
            except InvalidValue:  # a name no item can have (too long a key): denied later
                return None
        if facts is None:
            return None
        return model_version_context(facts.version, facts.stage, facts.aliases)

    async def _as_model_reader(
        self, principal: Principal, parsed: ParsedRequest, result: RequestDecision
    ) -> RequestDecision:
        """A logged model's artifacts, decided on the registered models it was registered as."""
        model_id = _logged_model_of(parsed)
        if model_id is None:
            return result
        try:
            versions = await asyncio.to_thread(self._registered_versions, model_id, parsed)
        except InvalidValue:  # an id no item can have (too long a key)
            return result
        for name in versions:
            ref = ResourceRef(REGISTERED_MODEL, name, "GetModelVersionArtifact")
            lookup = await self.resolver.prefetch([ref])
            decision = self.authz.decide(principal, "GetModelVersionArtifact", [ref], lookup)
            if decision.allowed:
                overall = replace(decision, action=parsed.action)
                return RequestDecision(overall, (decision,))
        return result

    def _registered_versions(self, model_id: str, parsed: ParsedRequest) -> tuple[str, ...]:
        """Registered model names whose live version really was registered from `model_id`."""
        facts = self.resolver.ownership.logged_model(model_id)
        if facts is None:
            return ()
        if parsed.artifact_path and parsed.artifact_path.split("/", 1)[0] != facts.experiment_id:
            return ()  # the path's experiment must be the logged model's own
        return facts.registered_as

    def _after_success(self, parsed: ParsedRequest) -> None:
        if parsed.action in _CREATES:
            self.resolver.forget_missing()
        elif parsed.action in _CHANGES_BINDINGS:
            for ref in parsed.resources:
                if ref.kind in (EXPERIMENT, REGISTERED_MODEL):
                    self.resolver.invalidate(ref.kind, ref.id)

    async def _remember(self, principal: Principal) -> None:
        """Record user name → subject once per process, so grants can name users."""
        key = (principal.username, principal.subject, principal.groups)
        if key in self._known_users or principal.kind == "anonymous":
            return
        try:
            await asyncio.to_thread(remember_user, self.resolver.table, principal)
        except Exception:  # the directory is a convenience; a failure must not block calls
            _logger.warning("could not record user %s (will retry)", principal.username)
            return
        self._known_users.add(key)

    def _is_admin(self, principal: Principal) -> bool:
        return bool(set(principal.groups) & set(self.authz.admin_groups))


def narrowed_request(request: Request, parsed: ParsedRequest, kept: tuple[ResourceRef, ...]):
    """The same request with only the readable experiment ids of a search."""
    keep = {r.id for r in kept}
    specs = [s for s in parsed.route.refs if s.narrow]
    if "params:query" in parsed.flags:
        from urllib.parse import parse_qsl, urlencode

        names = {s.source.removesuffix("[]") for s in specs}
        pairs = parse_qsl(request.scope["query_string"].decode("ascii"), keep_blank_values=True)
        pairs = [(k, v) for k, v in pairs if k not in names or v in keep]
        return body_request(request, query=urlencode(pairs).encode("ascii"))
    params = json.loads(request._body or b"{}")  # read (and parsed) by _decide
    if isinstance(params, str):
        params = json.loads(params)
    for spec in specs:
        _narrow_field(params, spec.source, keep)
    return body_request(request, body=json.dumps(params).encode())


def _narrow_field(params: dict, source: str, keep: set[str]) -> None:
    head, _, rest = source.partition(".")
    name = head.removesuffix("[]")
    key = name if name in params else _camel(name)
    if key not in params:
        return
    if not rest:  # experiment_ids[]
        params[key] = [v for v in params[key] if v in keep]
        return
    # locations[].mlflow_experiment.experiment_id: keep the list entries whose id is kept
    params[key] = [e for e in params[key] if _nested(e, rest) in keep]


def _nested(obj: object, path: str) -> object:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part, obj.get(_camel(part)))
    return obj


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _logged_model_of(parsed: ParsedRequest) -> str | None:
    for ref in parsed.resources:
        if ref.kind == LOGGED_MODEL:
            return ref.id
    path = parsed.artifact_path or ""
    parts = path.split("/")
    if len(parts) >= 3 and parts[1] == "models":  # <experiment>/models/<model id>/...
        return parts[2]
    return None


def _describe(ref: ResourceRef | None) -> str:
    if ref is None:
        return "this resource"
    if ref.kind == EXPERIMENT and ref.id == "0":  # where a script without set_experiment logs
        return (
            "experiment '0' (the Default experiment, which needs a grant: "
            "call mlflow.set_experiment('<name>') to work in an experiment of your own)"
        )
    return f"{ref.kind.replace('_', ' ')} '{ref.id}'"


def _denied(action: str, what: str, reason: str | None = None) -> JSONResponse:
    message = f"Permission denied: {action} on {what}."
    if reason:
        message = f"Permission denied: {action}: {reason}."
    return JSONResponse({"error_code": "PERMISSION_DENIED", "message": message}, status_code=403)


def _request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = uuid.uuid4().hex
        request.state.request_id = rid
    return rid


__all__ = ["AuthorizationSettings", "Decision", "PolicyAuthorizer", "narrowed_request"]
