"""The shape of one route-table row and of what matching a request returns."""

from __future__ import annotations

from dataclasses import dataclass

# How the handler behind a route reads its parameters (mirrors MLflow's handlers).
PROTO = "proto"  # _get_request_message: GET query (body when no query), POST/PATCH/DELETE body
QUERY = "query"  # request.args only
JSON = "json"  # request.json only (Content-Type must be JSON)
NONE = "none"  # no parameters: path and headers only
OTLP = "otlp"  # an OTLP span export body (protobuf or JSON), read for its trace ids


@dataclass(frozen=True)
class RefSpec:
    """Where one referenced resource comes from, exactly as the handler reads it.

    `source` forms: ``name`` (a parameter, snake_case as in the proto; the camelCase
    spelling is read too for JSON bodies), ``name[]`` (a repeated parameter),
    ``a.b.c`` / ``a[].b`` (a nested body field), ``{param}`` (a path parameter),
    ``header:Name``, ``run_id|run_uuid`` (either, and equal when both are sent),
    ``artifact:SOURCE`` (an artifact path whose first segment is the experiment id),
    ``source`` (a model version's source URI), ``otlp:trace_ids`` (the trace of every span of
    an OTLP export body).
    """

    kind: str
    source: str = ""
    action: str | None = None  # authorize with this action instead of the route's
    optional: bool = False  # absent → no reference (the handler does not require it)
    narrow: bool = False  # unreadable ids are dropped before forwarding, not denied
    missing_ok: bool = False  # a name that does not exist is forwarded (MLflow answers 404)


@dataclass(frozen=True)
class Route:
    """One (method, path template) row: the Cedar action and how to find its resources.

    `refused` is a reason string for families this deployment does not offer; such rows
    have no action. `filter` names the response filter a list/search call needs; a
    gateway that does not implement that filter must refuse the call.
    """

    method: str
    path: str  # template: {name} is one segment, {name:path} the rest of the path
    family: str
    action: str | None = None
    refs: tuple[RefSpec, ...] = ()
    params: str = PROTO
    filter: str | None = None
    refused: str | None = None
    anonymous: bool = False  # served without a caller identity (health, static files)

    @property
    def offered(self) -> bool:
        return self.refused is None

    @property
    def primary_kind(self) -> str | None:
        return self.refs[0].kind if self.refs else None

    def describe(self) -> str:
        """One line for people: `GET /path → Action on kind (source), ...; filter`."""
        if self.refused:
            return f"{self.method} {self.path} → refused: {self.refused}"
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


@dataclass(frozen=True)
class Refusal(Exception):
    """A request the gateway refuses before deciding; rendered as MLflow-style JSON."""

    status: int
    error_code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"error_code": self.error_code, "message": self.message}

    def __str__(self) -> str:
        return f"{self.status} {self.error_code}: {self.message}"


def bad_request(message: str) -> Refusal:
    return Refusal(400, "INVALID_PARAMETER_VALUE", message)


def not_found(message: str) -> Refusal:
    return Refusal(404, "ENDPOINT_NOT_FOUND", message)


def forbidden(message: str) -> Refusal:
    return Refusal(403, "PERMISSION_DENIED", message)
