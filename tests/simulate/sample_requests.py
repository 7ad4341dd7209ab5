"""One HTTP request per action, built from the route table, naming given resources.

Every reference of the chosen route points at the resource under test (an experiment and
the run, trace and logged model in it, or a registered model); references of the other
family (a model version's source run, a trace's linked prompt) point at `open` resources
every caller may read, so the request's outcome is the cell's own decision.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from gateway.errors import GatewayError
from gateway.routing import all_routes
from gateway.routing.model import JSON, NONE, OTLP, QUERY, Route
from gateway.routing.parse import parse_request
from gateway.routing.values import RAW_QUERY_REQUIRED
from store.vocabulary import (
    ARTIFACT_PATH,
    DATASET,
    EXPERIMENT,
    EXPERIMENT_NAME,
    ISSUE,
    LABEL_SCHEMA,
    LOGGED_MODEL,
    REGISTERED_MODEL,
    REVIEW_QUEUE,
    RUN,
    SCORER,
    TRACE,
    WORKSPACE,
)

# Allowed rows the gateway answers with a refusal of its own, after the decision
ANSWERED_STATUS = {"UpdateUserPassword": 400}  # passwords belong to the identity provider
_ALIAS_ACTIONS = {"SetRegisteredModelAlias", "DeleteRegisteredModelAlias", "GetModelVersionByAlias"}
EXPERIMENT_KINDS = {
    EXPERIMENT,
    EXPERIMENT_NAME,
    RUN,
    TRACE,
    LOGGED_MODEL,
    DATASET,
    SCORER,
    LABEL_SCHEMA,
    ISSUE,
    REVIEW_QUEUE,
    ARTIFACT_PATH,
}


@dataclass(frozen=True)
class Ids:
    """The resources one request names: an experiment's family and a registered model."""

    experiment: str
    run: str
    trace: str
    logged_model: str
    experiment_name: str
    model: str
    dataset: str = "no-such-dataset"
    scorer: str = "no-such-scorer"
    label_schema: str = "no-such-label-schema"
    issue: str = "no-such-issue"
    review_queue: str = "no-such-review-queue"
    artifact_path: str = ""  # an artifact-proxy path; default: a file of the run

    def of(self, kind: str) -> str:
        return {
            EXPERIMENT: self.experiment,
            RUN: self.run,
            TRACE: self.trace,
            LOGGED_MODEL: self.logged_model,
            EXPERIMENT_NAME: self.experiment_name,
            REGISTERED_MODEL: self.model,
            DATASET: self.dataset,
            SCORER: self.scorer,
            LABEL_SCHEMA: self.label_schema,
            ISSUE: self.issue,
            REVIEW_QUEUE: self.review_queue,
        }[kind]

    def artifact(self) -> str:
        return self.artifact_path or f"{self.experiment}/{self.run}/artifacts/model.pkl"


@dataclass(frozen=True)
class Sample:
    route: Route
    method: str
    path: str
    query: str
    headers: dict
    body: bytes

    @property
    def target(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")


def build(route: Route, ids: Ids, other: Ids, *, version: str = "1") -> Sample | None:
    """A request for `route` whose references name `ids` (own family) or `other`."""
    primary = route.refs[0].kind if route.refs else None
    family = REGISTERED_MODEL if primary == REGISTERED_MODEL else EXPERIMENT
    params: dict = {}
    path_params: dict[str, str] = {}
    headers: dict[str, str] = {}
    spans: list[dict] = []
    for spec in route.refs:
        if spec.kind == WORKSPACE or (spec.optional and spec.action):
            continue
        own = (spec.kind == REGISTERED_MODEL) == (family == REGISTERED_MODEL)
        use = ids if own else other
        src = spec.source
        if src == "source":
            params["source"] = f"runs:/{use.run}/model"
            continue
        if src == "otlp:trace_ids":
            otel_id = use.trace.removeprefix("tr-")
            if not re.fullmatch("[0-9a-f]{32}", otel_id):
                return None  # only tr-<32 hex> ids come from OTLP trace ids
            spans.append({"traceId": otel_id, "spanId": "00000000000000a1", "name": "s"})
            continue
        if src.startswith("artifact:"):
            src = src.removeprefix("artifact:")
            value = use.artifact()
        elif spec.kind == ARTIFACT_PATH:
            value = use.artifact()
        else:
            value = use.of(spec.kind)
        if src.startswith("{"):
            path_params[src.strip("{}")] = value
        elif src.startswith("header:"):
            headers[src.removeprefix("header:")] = value
        else:
            _put(params, src.split("|")[0], value)
    if family == REGISTERED_MODEL:
        params.setdefault("version", version)
    if route.action == "TransitionModelVersionStage":  # a move that leaves Production alone
        params.update(stage="Staging", archive_existing_versions=False)
    if route.action in _ALIAS_ACTIONS:
        params.setdefault("alias", "candidate")
    if route.params == QUERY:
        for name in RAW_QUERY_REQUIRED.get(route.action or "", ()):
            params.setdefault(name, "MLmodel")  # what the raw handler indexes, e.g. a path
    path = _fill(route.path, path_params)
    if path is None:
        return None
    in_query = route.params == QUERY or (
        route.params not in (JSON, NONE, OTLP) and route.method == "GET"
    )
    if route.params == NONE:
        return Sample(route, route.method, path, "", headers, b"")
    if route.params == OTLP:
        headers["content-type"] = "application/json"
        body = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
        return Sample(route, route.method, path, "", headers, json.dumps(body).encode())
    if in_query:
        if any(
            isinstance(v, dict) or (isinstance(v, list) and v and isinstance(v[0], dict))
            for v in params.values()
        ):
            return None  # nested fields are read from a body only
        return Sample(route, route.method, path, urlencode(params, doseq=True), headers, b"")
    headers["content-type"] = "application/json"
    return Sample(route, route.method, path, "", headers, json.dumps(params).encode())


def _put(params: dict, source: str, value: str) -> None:
    """Set `a`, `a[]`, `a.b.c` or `a[].b` to name `value`."""
    parts = source.split(".")
    node = params
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        name, many = part.removesuffix("[]"), part.endswith("[]")
        if last:
            node[name] = [value] if many else value
        elif many:
            existing = node.get(name)
            if not (isinstance(existing, list) and existing):
                node[name] = existing = [{}]
            node = existing[0]
        else:
            node = node.setdefault(name, {})


def _fill(template: str, values: dict[str, str]) -> str | None:
    def one(m: re.Match) -> str:
        name, is_path = m.group(1), m.group(2)
        value = values.get(name, "x")
        return value if is_path else quote(value, safe="")

    return re.sub(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(:path)?\}", one, template)


def requests_by_action(ids: Ids, other: Ids) -> dict[str, Sample]:
    """The first route of each action (`/api` before `/ajax-api`) that parses cleanly."""
    out: dict[str, Sample] = {}
    routes = sorted(
        (r for r in all_routes() if r.offered and r.action),
        key=lambda r: (r.path.startswith("/ajax-api"), any(s.kind == DATASET for s in r.refs)),
    )
    for route in routes:
        if route.action in out:
            continue
        sample = build(route, ids, other)
        if sample is None:
            continue
        try:
            parse_request(sample.method, sample.path, sample.query, sample.headers, sample.body)
        except GatewayError:
            continue
        out[route.action] = sample
    return out
