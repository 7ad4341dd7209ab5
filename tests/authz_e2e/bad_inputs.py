"""Malformed requests for every offered row of the route table, built from the table itself.

Each request starts from a well-formed call on real resources (ids a fixture created) and
breaks one thing: one parameter gets a value of the wrong type, a huge or non-finite number,
a null, an overlong string, a zero or negative `max_results`, a bad page token; or the whole
body or query string is broken (deep nesting, invalid UTF-8, bad percent-escapes, huge query
strings); or an id in the path is overlong. Parameter names and types come from the row's own
reference specs and from the request message MLflow's handler parses (its protobuf
descriptor), so a new route gets swept without editing this file.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import quote, urlencode

from gateway.routing import all_routes
from gateway.routing.model import JSON, NONE, PROTO, QUERY, Route

_PROTO_MODULES = (
    "service_pb2",
    "model_registry_pb2",
    "mlflow_artifacts_pb2",
    "webhooks_pb2",
    "datasets_pb2",
    "assessments_pb2",
)
_PATH_PARAM = re.compile(r"\{(\w+)(:path)?\}")

DEEP = "[" * 200_000  # deeper than any JSON parser's recursion limit
LONG = "x" * 5000  # longer than DynamoDB's 2048-byte partition key
HUGE_QUERY_VALUE = "q" * 60_000

# Values that break a parameter of each protobuf type (JSON bodies): the wrong JSON type,
# numbers out of range or not finite, overlong strings, nulls where lists go.
_ANY_TYPE: tuple[object, ...] = ([], {}, [None], LONG)
_BY_TYPE: dict[str, tuple[object, ...]] = {
    "int": (None, True, 1.5, 2**70, float("inf"), "1e999", "abc", -1),
    "float": (float("nan"), "nan", 10**400),
    "string": (5, "\ud800", "\x00"),
    "bool": ("true", 1),
    "enum": (99, float("inf"), "NOT_A_NAME"),
    "message": ("abc", 5),
    "repeated": (None, "abc", ["abc", None], [{}]),
}
# The same for query-string parameters (every value is a string there).
QUERY_VALUES: tuple[str, ...] = ("", "abc", "-1", "0", "1.5", "1e999", str(2**70), LONG, "[]")
PAGE_TOKENS: tuple[str, ...] = ("abc", "eyJ4IjogMX0=", "!!!", LONG)


@dataclass(frozen=True)
class Probe:
    """One HTTP request: method, raw path + query, raw body and content type."""

    method: str
    target: str
    body: bytes = b""
    content_type: str | None = None
    what: str = ""

    def describe(self) -> str:
        return f"{self.method} {self.target[:160]} [{self.what}]"


@dataclass(frozen=True)
class KnownIds:
    """Real resources to aim at, so the gateway lets a request through to the handler tier."""

    experiment_id: str
    run_id: str
    model_name: str
    version: str
    logged_model_id: str
    trace_id: str
    dataset_id: str = "d-0000000000000000000000000000000"
    assessment_id: str = "a-0000000000000000000000000000000"
    extra: dict = field(default_factory=dict)

    def by_name(self) -> dict[str, object]:
        run_path = f"{self.experiment_id}/{self.run_id}/artifacts"
        ids: dict[str, object] = {
            "experiment_id": self.experiment_id,
            "experiment_ids": [self.experiment_id],
            "run_id": self.run_id,
            "run_uuid": self.run_id,
            "run_ids": [self.run_id],
            "name": self.model_name,
            "version": self.version,
            "model_id": self.logged_model_id,
            "trace_id": self.trace_id,
            "trace_ids": [self.trace_id],
            "request_id": self.trace_id,
            "request_ids": [self.trace_id],
            "dataset_id": self.dataset_id,
            "assessment_id": self.assessment_id,
            "key": "m",
            "metric_key": "m",
            "tag_key": "t",
            "path": run_path + "/f.txt",
            "artifact_path": run_path + "/f.txt",
            "source": f"runs:/{self.run_id}/model",
            "alias": "champion",
        }
        return ids | self.extra


def offered_routes() -> list[Route]:
    """Every row the gateway forwards, once per handler (`/ajax-api` twins of `/api` left out).

    Refused rows never reach the handler tier; anonymous ones (health, UI files) read nothing.
    """
    rows = [r for r in all_routes() if r.offered and r.decided and not r.anonymous]
    served = {(r.method, r.path) for r in rows}
    return [
        r
        for r in rows
        if not (
            r.path.startswith("/ajax-api/")
            and (r.method, r.path.replace("/ajax-api/", "/api/", 1)) in served
        )
    ]


@cache
def proto_fields(action: str) -> dict[str, object]:
    """Field name → protobuf FieldDescriptor of the request message MLflow parses, if any."""
    for name in _PROTO_MODULES:
        module = importlib.import_module(f"mlflow.protos.{name}")
        message = module.DESCRIPTOR.message_types_by_name.get(action)
        if message is not None:
            return {f.name: f for f in message.fields}
    return {}


def parameter_names(route: Route) -> list[str]:
    """The parameters the handler reads: its message's fields and the row's reference specs."""
    names = list(proto_fields(route.action or ""))
    for spec in route.refs:
        head = spec.source.split("|")[0].split(".")[0].removesuffix("[]")
        if head and not head.startswith(("{", "header:", "artifact:")) and head not in names:
            names.append(head)
        if spec.source.startswith("artifact:"):
            names.append(spec.source.removeprefix("artifact:"))
    for extra in ("max_results", "page_token"):
        if extra not in names:
            names.append(extra)
    return names


def base_params(route: Route, ids: KnownIds) -> dict[str, object]:
    """A well-formed parameter set on the known resources (only fields the handler reads)."""
    known = ids.by_name()
    params: dict[str, object] = {}
    for name in parameter_names(route):
        descriptor = proto_fields(route.action or "").get(name)
        if name not in known:
            continue
        value = known[name]
        repeated = descriptor is not None and descriptor.is_repeated
        if repeated and not isinstance(value, list):
            value = [value]
        if not repeated and isinstance(value, list):
            value = value[0]
        params[name] = value
    return params


def route_path(route: Route, ids: KnownIds, override: dict[str, str] | None = None) -> str:
    """The row's path template with real (percent-encoded) ids in it."""
    known = ids.by_name() | (override or {})

    def fill(match: re.Match) -> str:
        value = str(known.get(match.group(1), "x"))
        return quote(value, safe="/" if match.group(2) else "")

    return _PATH_PARAM.sub(fill, route.path)


def reads_query(route: Route) -> bool:
    return route.params == QUERY or (route.params in (PROTO, NONE) and route.method == "GET")


def probe(route: Route, ids: KnownIds, params: dict[str, object], what: str) -> Probe:
    """A request carrying `params` the way the row's handler reads them."""
    path = route_path(route, ids)
    if reads_query(route):
        pairs = []
        for key, value in params.items():
            for item in value if isinstance(value, list) else [value]:
                pairs.append((key, item if isinstance(item, str) else json.dumps(item)))
        query = urlencode(pairs)
        return Probe(route.method, path + ("?" + query if query else ""), what=what)
    body = json.dumps(params).encode()
    return Probe(route.method, path, body, "application/json", what)


def parameter_probes(route: Route, ids: KnownIds) -> Iterator[Probe]:
    """One probe per (parameter, bad value): the rest of the request stays well-formed."""
    base = base_params(route, ids)
    for name in parameter_names(route):
        for value in bad_values(route, name):
            yield probe(route, ids, base | {name: value}, f"{name}={_short(value)}")


def bad_values(route: Route, name: str) -> tuple[object, ...]:
    """The values that break parameter `name` of `route`, chosen by its protobuf type."""
    if reads_query(route):
        values: tuple[object, ...] = QUERY_VALUES
    else:
        values = _ANY_TYPE + _BY_TYPE[type_of(route, name)]
        if name == "max_results":
            values += (0, 10**9)
    return PAGE_TOKENS + values if name == "page_token" else values


def type_of(route: Route, name: str) -> str:
    """The protobuf type of a parameter, as a key of the bad values (string if unknown)."""
    field = proto_fields(route.action or "").get(name)
    if field is None:
        return "string"
    if field.is_repeated:
        return "repeated"
    return {
        field.CPPTYPE_INT32: "int",
        field.CPPTYPE_INT64: "int",
        field.CPPTYPE_UINT32: "int",
        field.CPPTYPE_UINT64: "int",
        field.CPPTYPE_DOUBLE: "float",
        field.CPPTYPE_FLOAT: "float",
        field.CPPTYPE_BOOL: "bool",
        field.CPPTYPE_ENUM: "enum",
        field.CPPTYPE_MESSAGE: "message",
    }.get(field.cpp_type, "string")


def body_probes(route: Route, ids: KnownIds) -> Iterator[Probe]:
    """Whole-request breakage: the body or the query string itself is malformed."""
    path = route_path(route, ids)
    if reads_query(route):
        base = urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in
                          base_params(route, ids).items()})  # fmt: skip
        for raw, what in (
            ("%zz&" + base, "bad percent-escape"),
            ("%ff%fe=1&" + base, "invalid UTF-8 escape"),
            (base + "&max_results=" + HUGE_QUERY_VALUE, "huge query"),
            (base + "&" + "&".join(f"k{i}=v" for i in range(5000)), "many parameters"),
        ):
            yield Probe(route.method, f"{path}?{raw}", what=what)
        if route.params != PROTO:
            return  # MLflow's proto handlers read a GET's body when it has no query string
    content_type = "application/json" if route.params in (PROTO, JSON, NONE) else None
    for raw, what in (
        (DEEP.encode(), "deep nesting"),
        (b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nesting under a key"),
        (b'{"name": "\xff\xfe"}', "invalid UTF-8"),
        (b"[]", "JSON array"),
        (b'"{\\"x\\": 1}"', "double-encoded"),
        (b"null", "JSON null"),
        (b'{"max_results": 1e999}', "overflowing number"),
        (b'{"max_results": NaN}', "NaN"),
        (b"{", "truncated JSON"),
    ):
        yield Probe(route.method, path, raw, content_type, what)


def path_probes(route: Route, ids: KnownIds) -> Iterator[Probe]:
    """Overlong or odd ids in the path's parameters."""
    names = [m.group(1) for m in _PATH_PARAM.finditer(route.path)]
    for name in names:
        for value in (LONG, "%", "..", "x" * 300, "\u00e9"):
            path = route_path(route, ids, {name: value})
            yield Probe(route.method, path, *_body_of(route, ids), what=f"path {name}")


def _body_of(route: Route, ids: KnownIds) -> tuple[bytes, str | None]:
    if reads_query(route):
        return b"", None
    return json.dumps(base_params(route, ids)).encode(), "application/json"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) < 40 else text[:37] + "..."
