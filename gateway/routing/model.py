"""The shape of one route-table row and of what matching a request returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

# How the handler behind a route reads its parameters (mirrors MLflow's handlers).
PROTO = "proto"  # _get_request_message: GET query (body when no query), POST/PATCH/DELETE body
QUERY = "query"  # request.args only
JSON = "json"  # request.json only (Content-Type must be JSON)
NONE = "none"  # no parameters: path and headers only
OTLP = "otlp"  # an OTLP span export body (protobuf or JSON), read for its trace ids

# Who answers a row (`Route.serve`).
FORWARD = "forward"  # decided by the policies, then forwarded to MLflow: every MLflow row
ANSWER = "answer"  # decided by the policies, then answered by the gateway (GetMetrics)
PERMISSIONS = "permissions"  # the permissions API, which decides each of its calls itself
OPEN = "open"  # answered by the gateway without credentials or a decision (probes, sign-in)
# How the decisions on a dataset's experiments combine (`RefSpec.combine`).
ALL = "all"  # every linked experiment must allow (changes)
ANY = "any"  # one linked experiment allowing is enough (reads)
# What answers one of the gateway's own rows (ANSWER, OPEN), found by the row's action.
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class RefSpec:
    """Where one referenced resource comes from, exactly as the handler reads it.

    `source` forms: ``name`` (a parameter, snake_case as in the proto; the camelCase
    spelling is read too for JSON bodies), ``name[]`` (a repeated parameter),
    ``a.b.c`` / ``a[].b`` (a nested body field), ``{param}`` (a path parameter),
    ``header:Name``, ``run_id|run_uuid`` (either, and equal when both are sent),
    ``artifact:SOURCE`` (an artifact path whose first segment is the experiment id),
    ``source`` (a model version's source URI), ``otlp:trace_ids`` (the trace of every span of
    an OTLP export body), ``absent:name[]`` (the workspace, when that list is not sent).
    """

    kind: str
    source: str = ""
    action: str | None = None  # authorize with this action instead of the route's
    optional: bool = False  # absent → no reference (the handler does not require it)
    narrow: bool = False  # unreadable ids are dropped before forwarding, not denied
    missing_ok: bool = False  # a name that does not exist is forwarded (MLflow answers 404)
    combine: str = ALL  # a dataset: allowed on ALL its experiments, or on ANY of them


@dataclass(frozen=True)
class Route:
    """One (method, path template) row: the Cedar action and how to find its resources.

    `refused` is a reason string for families this deployment does not offer; such rows
    have no action. `filter` names the response filter a list/search call needs; a
    gateway that does not implement that filter must refuse the call. The gateway's own
    PERMISSIONS and OPEN rows name the gateway call in `action` and have no resources.
    """

    method: str
    path: str  # template: {name} is one segment, {name:path} the rest of the path
    family: str
    action: str | None = None
    refs: tuple[RefSpec, ...] = ()
    params: str = PROTO
    filter: str | None = None
    refused: str | None = None
    anonymous: bool = False  # forwarded without a caller identity or a decision (UI files)
    serve: str = FORWARD

    @property
    def decided(self) -> bool:
        """Decided by the policies on the resources the request names (FORWARD, ANSWER)."""
        return self.serve in (FORWARD, ANSWER)

    @property
    def offered(self) -> bool:
        return self.refused is None

    def describe(self) -> str:
        """One line for people: `GET /path → Action on kind (source), ...; filter`."""
        if self.refused:
            return f"{self.method} {self.path} → refused: {self.refused}"
        if not self.decided:
            who = "without credentials" if self.serve == OPEN else "deciding each call itself"
            return f"{self.method} {self.path} → {self.action}, answered by the gateway {who}"
        where = {PROTO: "params", QUERY: "query", JSON: "body", NONE: "path", OTLP: "otlp"}[
            self.params
        ]
        refs = ", ".join(
            f"{r.kind} ({r.source or 'default'})"
            + (f" as {r.action}" if r.action else "")
            + (" optional" if r.optional else "")
            + (" narrowed" if r.narrow else "")
            for r in self.refs
        )
        tail = f"; filter {self.filter}" if self.filter else ""
        return f"{self.method} {self.path} → {self.action} on {refs} [{where}]{tail}"


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    method: str  # the method as routed (HEAD is routed as GET)
    path: str  # the canonical (decoded) path that matched
    path_params: tuple[tuple[str, str], ...]

    def param(self, name: str) -> str | None:
        return dict(self.path_params).get(name)
