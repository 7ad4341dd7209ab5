"""Read a request the way MLflow's handler will read it, and name every resource it touches.

Parity rules (MLflow 3.17.2, `server/handlers.py`):
- protobuf handlers: GET reads the query string (first value of a repeated key), or the JSON
  body when there is no query string at all; POST/PUT need a JSON Content-Type and read the
  body only; PATCH/DELETE read the body whatever the Content-Type;
- raw handlers read `request.args` (query) or `request.json` (body) only;
- ids in the URL path win over body fields (a disagreeing body field is refused here);
- `run_id` or `run_uuid` (both accepted, they must agree); a field spelled both snake_case
  and camelCase is refused, as are duplicate JSON keys.
Anything that cannot be read unambiguously is refused with an MLflow-style error, and so is
anything the handler would fail on with a 500 instead of an error of its own: values that do
not fit the call's protobuf message (routing/messages.py), JSON the parser cannot
nest that deep, JSON-in-a-string fields that are no JSON, the parameters MLflow's raw
handlers index or convert without checking.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.errors import GatewayError, bad_request
from gateway.routing import match_route
from gateway.routing.model import ALL, JSON, NONE, OTLP, PROTO, RefSpec, Route, RouteMatch
from gateway.routing.otlp import otlp_trace_ids
from gateway.routing.params import camel, headers_of, read_params
from gateway.routing.values import (
    check_artifact_path_length,
    check_values,
)
from store.vocabulary import (
    ARTIFACT_PATH,
    DEFAULT_WORKSPACE,
    EXPERIMENT,
    LOGGED_MODEL,
    REGISTERED_MODEL,
    RUN,
    WORKSPACE,
)

# headers that would make some servers treat the request as another method or workspace
_REFUSED_HEADERS = {
    "x-http-method-override": "method-override headers are not accepted",
    "x-http-method": "method-override headers are not accepted",
    "x-method-override": "method-override headers are not accepted",
    "x-mlflow-workspace": "workspaces are not offered",
}


@dataclass(frozen=True)
class ResourceRef:
    """A resource a request names, before resolution (run → experiment, ...)."""

    kind: str
    id: str
    action: str | None = None  # decided with this action instead of the request's
    narrow: bool = False  # dropped from the request when unreadable, instead of a denial
    missing_ok: bool = False  # if it does not exist, the call is forwarded (MLflow's 404)
    combine: str = ALL  # a dataset: decided on all of its experiments, or on any of them
    any_of: str | None = None  # references sharing this key need only one of them allowed
    named: tuple[str, str] | None = None  # (kind, id) as the caller named it, if resolved away


def ref_of_workspace(spec: RefSpec) -> ResourceRef:
    return ResourceRef(WORKSPACE, DEFAULT_WORKSPACE, spec.action)


@dataclass(frozen=True)
class RegistryCall:
    """What a registry call names beside its registered model, as MLflow's handler reads it.

    Values the handler would refuse are kept as they came (None when absent or not a string):
    the facts built from them then fail closed.
    """

    name: str
    version: str | None = None
    alias: str | None = None
    stage: str | None = None  # the stage a transition asks for
    archive_existing_versions: bool = False  # True for anything but an absent or false flag


@dataclass(frozen=True)
class ParsedRequest:
    action: str
    route: Route
    match: RouteMatch
    resources: tuple[ResourceRef, ...]
    artifact_path: str | None = None  # canonical mlflow-artifacts path, when there is one
    registry_call: RegistryCall | None = None  # a call on one registered model
    flags: frozenset[str] = frozenset()  # e.g. "head", "params:query", "params:body"

    @property
    def filter(self) -> str | None:
        return self.route.filter


def parse_request(
    method: str,
    raw_path: str,
    query_string: str | bytes = "",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> ParsedRequest:
    """Route and parse one request; raise GatewayError when it is not routable or not readable."""
    match = match_route(method, raw_path)
    route = match.route
    header_map = headers_of(headers)
    for name, reason in _REFUSED_HEADERS.items():
        if name in header_map:
            raise bad_request(f"{reason} ({name}).")
    if route.action in _RAW_BODY_ACTIONS:
        body = b""  # file bytes: never read as parameters
    params, source = read_params(route.params, match.method, query_string, header_map, body)
    check_values(route, params, source)
    reader = _Reader(match, params, source, header_map, body)
    reader.check_path_ids_agree()
    resources: list[ResourceRef] = []
    for spec in route.refs:
        resources.extend(reader.refs(spec))
    flags = {f"params:{source}"} if source else set()
    if not resources and reader.empty_search:
        flags.add(EMPTY_SEARCH)
    elif not resources:
        raise bad_request(f"{route.action} names no resource.")
    if method.upper() == "HEAD":
        flags.add("head")
    return ParsedRequest(
        action=route.action or "",
        route=route,
        match=match,
        resources=tuple(dict.fromkeys(resources)),  # de-duplicated, order kept
        artifact_path=reader.artifact_path,
        registry_call=reader.registry_call(),
        flags=frozenset(flags),
    )


def reads_body(method: str, raw_path: str) -> bool:
    """Whether parse_request needs the request body (False: pass b"").

    Artifact uploads and raw-query handlers never have their body read here; OTLP span exports
    are read for the traces they write into.
    Raises GatewayError like parse_request for paths that are not routable.
    """
    route = match_route(method, raw_path).route
    if route.params == NONE:
        return route.action not in _RAW_BODY_ACTIONS
    return route.params in (PROTO, JSON, OTLP)


# Calls whose body is not JSON and names nothing to decide on: the bytes of a file.
_RAW_BODY_ACTIONS = frozenset({"UploadArtifact"})
# A search whose list of experiments is sent empty: MLflow answers it with no rows.
EMPTY_SEARCH = "empty-search"


# ---- reading each reference -----------------------------------------------------------


class _Reader:
    def __init__(
        self,
        match: RouteMatch,
        params: dict | None,
        source: str | None,
        headers: dict,
        body: bytes = b"",
    ):
        self.match = match
        self.params = params
        self.source = source
        self.headers = headers
        self.body = body
        self.artifact_path: str | None = None
        self.empty_search = False  # a narrowed list was sent, and named nothing

    def refs(self, spec: RefSpec) -> list[ResourceRef]:
        src = spec.source
        if spec.kind == WORKSPACE:
            if src.startswith("absent:"):  # decided on the workspace when the list is not sent
                return (
                    [] if self._values(RefSpec(EXPERIMENT, src[7:])) else [ref_of_workspace(spec)]
                )
            if src and not self._scalar(src, required=False):
                return []
            return [ResourceRef(WORKSPACE, DEFAULT_WORKSPACE, spec.action)]
        if src == "source":
            return self._model_source(spec)
        if src == "otlp:trace_ids":
            ids = otlp_trace_ids(self.headers, self.body)
            return [ResourceRef(spec.kind, i, spec.action, missing_ok=spec.missing_ok) for i in ids]
        if src.startswith("artifact:"):
            path = self._one(src.removeprefix("artifact:"), required=True)
            experiment_id = self._artifact_experiment(path)
            return [ResourceRef(EXPERIMENT, experiment_id, spec.action, spec.narrow)]
        ids = self._values(spec)
        if not ids and not spec.optional:
            label = src.split("|")[0].removesuffix("[]")
            if spec.narrow and self._sent_as_list(src):
                self.empty_search = True  # MLflow searches no experiment: an empty answer
                return []
            if spec.narrow:
                raise bad_request(f"'{label}' must name at least one {spec.kind}.")
            raise bad_request(f"Missing value for required parameter '{label}'.")
        return [
            ResourceRef(spec.kind, i, spec.action, spec.narrow, spec.missing_ok, spec.combine)
            for i in ids
        ]

    def _sent_as_list(self, src: str) -> bool:
        """Whether the body sends the list a narrowed source starts from (`[]` included)."""
        head = src.split(".")[0].removesuffix("[]")
        return self.source == "body" and isinstance(self._get(head), list)

    def _values(self, spec: RefSpec) -> list[str]:
        src = spec.source
        if "|" in src:
            return self._either(*src.split("|"))
        if src.endswith("[]") and "." not in src:
            return self._list(src[:-2])
        if "." in src:
            return self._nested(src)
        value = self._one(src, required=False)
        return [value] if value else []

    def _one(self, src: str, *, required: bool) -> str:
        """A path parameter, a header or a scalar parameter."""
        if src.startswith("{"):
            value = self.match.param(src.strip("{}")) or ""
        elif src.startswith("header:"):
            values = self.headers.get(src.removeprefix("header:").lower(), [])
            if len(values) > 1:
                raise bad_request(f"The header {src.removeprefix('header:')} is repeated.")
            value = values[0].strip() if values else ""
        else:
            value = self._scalar(src, required=required)
        if required and not value:
            raise bad_request(f"Missing value for required parameter '{src.strip('{}')}'.")
        return value

    def _scalar(self, name: str, *, required: bool) -> str:
        value = self._get(name)
        if self.source == "query" and isinstance(value, list):
            value = value[0] if value else None  # like request.args.get: the first value
        if value is None or value == "":
            if required:
                raise bad_request(f"Missing value for required parameter '{name}'.")
            return ""
        if not isinstance(value, str):
            raise bad_request(f"Parameter '{name}' must be a string.")
        return value

    def _list(self, name: str) -> list[str]:
        value = self._get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise bad_request(f"Parameter '{name}' must be a list of non-empty strings.")
        return list(dict.fromkeys(value))

    def _either(self, first: str, second: str) -> list[str]:
        a = self._scalar(first, required=False)
        b = self._scalar(second, required=False)
        if a and b and a != b:
            raise bad_request(f"'{first}' and '{second}' name different resources.")
        return [a or b] if (a or b) else []

    def _nested(self, path: str) -> list[str]:
        if self.source != "body":
            return []
        nodes: list[object] = [self.params]
        for part in path.split("."):
            many = part.endswith("[]")
            name = part.removesuffix("[]")
            nxt: list[object] = []
            for node in nodes:
                if not isinstance(node, dict):
                    raise bad_request(f"Field '{path}' has an unexpected shape.")
                value = _field(node, name)
                if value is None:
                    continue
                if many:
                    if not isinstance(value, list):
                        raise bad_request(f"Field '{name}' must be a list.")
                    nxt.extend(value)
                else:
                    nxt.append(value)
            nodes = nxt
        if not all(isinstance(v, str) for v in nodes):
            raise bad_request(f"Field '{path}' must hold strings.")
        return list(dict.fromkeys(v for v in nodes if v))

    def _get(self, name: str) -> object:
        if self.params is None:
            return None
        if self.source == "query":  # the handler reads only the proto (snake_case) name
            return self.params.get(name)
        return _field(self.params, name)

    def check_path_ids_agree(self) -> None:
        if self.source != "body" or not self.params:
            return
        for name, value in self.match.path_params:
            given = _field(self.params, name)
            if given is not None and given != value:
                raise bad_request(f"'{name}' in the body disagrees with the request path.")

    def _artifact_experiment(self, path: str) -> str:
        self.artifact_path = canonical_artifact_path(path)
        return self.artifact_path.split("/", 1)[0]

    def _model_source(self, spec: RefSpec) -> list[ResourceRef]:
        source = self._scalar("source", required=True)
        if source in PROMPT_SOURCE_PLACEHOLDERS:  # a prompt version: no artifacts behind it
            return []
        kind, ident = model_source_target(source)
        if kind == ARTIFACT_PATH:
            return [ResourceRef(EXPERIMENT, self._artifact_experiment(ident), spec.action)]
        if kind == WORKSPACE:
            return [ResourceRef(WORKSPACE, DEFAULT_WORKSPACE, "RegisterExternalSource")]
        action = {RUN: "GetRun", LOGGED_MODEL: "GetLoggedModel"}.get(kind, "GetModelVersion")
        return [ResourceRef(kind, ident, action)]

    def registry_call(self) -> RegistryCall | None:
        if REGISTERED_MODEL not in {s.kind for s in self.match.route.refs} or not self.params:
            return None
        name = self._scalar("name", required=False)
        if not name:
            return None
        archive = self._get("archive_existing_versions")
        return RegistryCall(
            name=name,
            version=self._text_or_none("version"),
            alias=self._text_or_none("alias"),
            stage=self._text_or_none("stage"),
            archive_existing_versions=archive is not None and archive is not False,
        )

    def _text_or_none(self, name: str) -> str | None:
        value = self._get(name)
        if self.source == "query" and isinstance(value, list):
            value = value[0] if value else None
        return value if isinstance(value, str) and value else None


def _field(obj: dict, name: str) -> object:
    """A JSON field by its proto name or its camelCase JSON name (never both: refused)."""
    if name in obj:
        return obj[name]
    return obj.get(camel(name))


# ---- artifact paths and model-version sources ----------------------------------------


def canonical_artifact_path(path: str) -> str:
    """An mlflow-artifacts path `<experiment id>/...`, refusing anything MLflow would re-decode.

    MLflow's `validate_path_is_safe` decodes twice; any `%` left here would be decoded again
    behind us, so it is refused, as are absolute paths, dot segments and empty segments.
    """
    if not path or "%" in path or "\\" in path or "\x00" in path:
        raise bad_request(f"Invalid artifact path: '{path}'.")
    if path.startswith("/") or "//" in path or ":" in path.split("/", 1)[0]:
        raise bad_request(f"Invalid artifact path: '{path}'.")
    segments = path.rstrip("/").split("/")
    if any(s in ("", ".", "..") for s in segments):
        raise bad_request(f"Invalid artifact path: '{path}'.")
    check_artifact_path_length(path)
    if segments[0] == "workspaces":
        raise bad_request("Workspace-scoped artifact paths are not offered.")
    return "/".join(segments)


# The `source` MLflow's client/UI and its store give a prompt version (mlflow.prompt.constants).
PROMPT_SOURCE_PLACEHOLDERS = frozenset({"dummy-source", "prompt-template"})


def model_source_target(source: str) -> tuple[str, str]:
    """What a model version's `source` points at: (kind, id).

    `runs:/<run>/...` → run, `models:/<m-id>` → logged model, `models:/<name>/<version>`
    → registered model, `mlflow-artifacts:/<exp>/...` → that artifact path; anything else
    is outside this deployment's artifact store ("workspace": an admin-only decision).
    """
    if source.startswith("runs:/"):
        run_id = source.removeprefix("runs:/").lstrip("/").split("/", 1)[0]
        if not run_id:
            raise bad_request(f"Invalid model source: '{source}'.")
        return RUN, run_id
    if source.startswith("models:/"):
        parts = [p for p in source.removeprefix("models:/").split("/") if p]
        if len(parts) == 1 and "@" in parts[0]:  # models:/<name>@<alias>
            return REGISTERED_MODEL, parts[0].split("@", 1)[0]
        if len(parts) == 1:
            return LOGGED_MODEL, parts[0]
        if len(parts) == 2:
            return REGISTERED_MODEL, parts[0].split("@", 1)[0]
        raise bad_request(f"Invalid model source: '{source}'.")
    if source.startswith("mlflow-artifacts:"):
        rest = source.removeprefix("mlflow-artifacts:")
        if rest.startswith("//"):  # mlflow-artifacts://host:port/<path>
            rest = "/" + rest[2:].split("/", 1)[1] if "/" in rest[2:] else ""
        return ARTIFACT_PATH, rest.lstrip("/")
    return WORKSPACE, DEFAULT_WORKSPACE


__all__ = [
    "ParsedRequest",
    "GatewayError",
    "ResourceRef",
    "canonical_artifact_path",
    "model_source_target",
    "parse_request",
    "reads_body",
]
