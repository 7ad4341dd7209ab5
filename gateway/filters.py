"""Narrowing and filtering: a search reads only what the caller may read.

Before forwarding, a search's experiment ids the caller may not read are dropped from the
request (`narrowed_request`). After, list and search answers keep only the items the caller
may read (`ResponseFilters`): each item is decided on its own experiment or registered model
with the "get" action of its kind (a run with GetRun, a model version with GetModelVersion,
...), so the policy files decide what a search shows. A page that lost items is refilled from
the handler tier: the next pages are asked for exactly the number of items still missing, so
every upstream page is consumed whole and the handler's own next-page token stays valid.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.authz.datasets import expand_datasets
from gateway.authz.decide import Authorizer, BindingsLookup
from gateway.errors import forbidden
from gateway.proxy import Forwarder
from gateway.routing.model import ANY
from gateway.routing.params import camel
from gateway.routing.parse import ParsedRequest, ResourceRef
from store.handler.identity import Principal

if TYPE_CHECKING:
    from gateway.pipeline import Call
from store.vocabulary import DATASET, DEFAULT_WORKSPACE, EXPERIMENT, REGISTERED_MODEL, WORKSPACE

DatasetLinks = Callable[[tuple[str, ...]], Awaitable[Mapping[str, tuple[str, ...] | None]]]

_MAX_REFILLS = 20  # upstream pages per client page at most (bounded work per request)
GRAPHQL = "graphql"  # the filter of /graphql: decided per root field before forwarding
DATASET_EXPERIMENT_IDS = "dataset_experiment_ids"  # the experiments a dataset is linked to
WEBHOOKS = "webhooks"  # every webhook or none: GetWebhook decided once on the workspace


@dataclass(frozen=True)
class ItemRule:
    """Where a filter finds the items of a response and the resource each one is decided on."""

    key: str  # the list field of the response
    kind: str  # experiment | registered_model
    action: str
    resource_id: Callable[[dict], str | None]


def _experiment_id(item: dict) -> str | None:
    return item.get("experiment_id")


def _experiment_of_trace(item: dict) -> str | None:
    info = item.get("trace_info", item)
    location = (info.get("trace_location") or {}).get("mlflow_experiment") or {}
    return location.get("experiment_id") or info.get("experiment_id")


RULES: dict[str, ItemRule] = {
    "experiments": ItemRule(
        "experiments", EXPERIMENT, "GetExperiment", lambda i: i.get("experiment_id")
    ),
    "registered_models": ItemRule(
        "registered_models", REGISTERED_MODEL, "GetRegisteredModel", lambda i: i.get("name")
    ),
    "model_versions": ItemRule(
        "model_versions", REGISTERED_MODEL, "GetModelVersion", lambda i: i.get("name")
    ),
    "runs": ItemRule(
        "runs", EXPERIMENT, "GetRun", lambda i: (i.get("info") or {}).get("experiment_id")
    ),
    "logged_models": ItemRule(
        "models", EXPERIMENT, "GetLoggedModel", lambda i: (i.get("info") or {}).get("experiment_id")
    ),
    "traces": ItemRule("traces", EXPERIMENT, "GetTraceInfo", _experiment_of_trace),
    "datasets": ItemRule(
        "dataset_summaries", EXPERIMENT, "SearchDatasets", lambda i: i.get("experiment_id")
    ),
    "issues": ItemRule("issues", EXPERIMENT, "GetIssue", _experiment_id),
    # an evaluation dataset is readable by readers of any experiment it is linked to
    "evaluation_datasets": ItemRule(
        "datasets", DATASET, "GetDataset", lambda i: i.get("dataset_id")
    ),
}


class ResponseFilters:
    def __init__(
        self,
        authorizer: Authorizer,
        prefetch: Callable[[list[ResourceRef]], Awaitable[BindingsLookup]],
        forwarder: Forwarder,
        dataset_experiments: DatasetLinks | None = None,
    ):
        self.authz = authorizer
        self.prefetch = prefetch
        self.forwarder = forwarder
        self.dataset_experiments = dataset_experiments

    async def apply(
        self,
        request: Request,
        call: Call,
        parsed: ParsedRequest,
        principal: Principal,
        response: Response,
    ) -> Response:
        raw = await _drain(response)
        document = _decode_json(raw, response)
        if document is None:
            return _refused(parsed.action)  # an answer that cannot be read is not passed on
        if parsed.filter == "experiment":  # GetExperimentByName: one experiment, re-checked
            experiment = document.get("experiment") or {}
            kept = await self.readable(
                principal, "GetExperimentByName", EXPERIMENT, [experiment], _experiment_id
            )
            if not kept:
                return _refused(parsed.action)
            return _unchanged(raw, response)
        if parsed.filter == DATASET_EXPERIMENT_IDS:
            return await self._dataset_experiment_ids(principal, document, raw, response)
        if parsed.filter == WEBHOOKS:  # a webhook sees every model: all of them, or nothing
            if await self._allowed_on_workspace(principal, "GetWebhook"):
                return _unchanged(raw, response)
            return _json({}, response)
        rule = RULES.get(parsed.filter or "")
        if rule is None:
            return _refused(parsed.action)  # a filter this gateway does not know: fail closed
        items = await self.readable(
            principal, rule.action, rule.kind, document.get(rule.key) or [], rule.resource_id
        )
        lost = len(document.get(rule.key) or []) - len(items)
        token = document.get("next_page_token")
        wanted = _max_results(call, parsed) or len(document.get(rule.key) or [])
        refills = 0
        while lost and token and len(items) < wanted and refills < _MAX_REFILLS:
            refills += 1
            page = await self._page(request, call, parsed, principal, token, wanted - len(items))
            if page is None:
                break
            items += await self.readable(
                principal, rule.action, rule.kind, page.get(rule.key) or [], rule.resource_id
            )
            token = page.get("next_page_token")
        if not lost:
            return _unchanged(raw, response)
        out = {k: v for k, v in document.items() if k not in (rule.key, "next_page_token")}
        if items:
            out[rule.key] = items
        if token:
            out["next_page_token"] = token
        return _json(out, response)

    async def run_versions(
        self, principal: Principal, response: Response, keys: tuple[tuple[str, str, str], ...]
    ) -> Response:
        """A GraphQL answer with runs' model versions kept only for models the caller may
        read (`keys`: where they are, gateway/routing/graphql.py)."""
        raw = await _drain(response)
        document = _decode_json(raw, response)
        if document is None:
            return _refused("GraphQL")
        changed = False
        for root, run_key, versions_key in keys:
            run = _nested_dict(document, "data", root, run_key)
            versions = run.get(versions_key) if run is not None else None
            if not isinstance(versions, list) or not versions:
                continue
            kept = await self.readable(
                principal, "GetModelVersion", REGISTERED_MODEL, versions, lambda v: v.get("name")
            )
            if len(kept) != len(versions):
                run[versions_key] = kept
                changed = True
        return _json(document, response) if changed else _unchanged(raw, response)

    async def _dataset_experiment_ids(
        self, principal: Principal, document: dict, raw: bytes, response: Response
    ) -> Response:
        """A dataset's links, only to experiments the caller may see: a reader of one of its
        experiments learns nothing of the others it cannot read."""
        linked = [{"experiment_id": i} for i in document.get("experiment_ids") or []]
        kept = await self.readable(principal, "GetExperiment", EXPERIMENT, linked, _experiment_id)
        if len(kept) == len(linked):
            return _unchanged(raw, response)
        out = {k: v for k, v in document.items() if k != "experiment_ids"}
        if kept:
            out["experiment_ids"] = [i["experiment_id"] for i in kept]
        return _json(out, response)

    async def readable(
        self, principal: Principal, action: str, kind: str, items: list, resource_id
    ) -> list:
        """The items whose experiment or model the caller may read, in order."""
        ids = [resource_id(i) if isinstance(i, dict) else None for i in items]
        if kind == DATASET:
            return await self._readable_datasets(principal, action, items, ids)
        refs = [ResourceRef(kind, str(i)) for i in dict.fromkeys(x for x in ids if x)]
        if not refs:
            return []
        lookup = await self.prefetch(refs)
        decisions = self.authz.decide_each(principal, action, refs, lookup)
        allowed = {d.resource.id for d in decisions if d.allowed}
        return [item for item, i in zip(items, ids, strict=True) if i and str(i) in allowed]

    async def _readable_datasets(
        self, principal: Principal, action: str, items: list, ids: list
    ) -> list:
        """Datasets decided as a request naming each would be (gateway/authz/datasets.py)."""
        wanted = tuple(dict.fromkeys(str(i) for i in ids if i))
        if not wanted or self.dataset_experiments is None:
            return []  # nothing to decide on: nothing is shown
        linked = await self.dataset_experiments(wanted)
        named = [ResourceRef(DATASET, i, combine=ANY) for i in wanted]
        refs = list(expand_datasets(named, linked))
        lookup = await self.prefetch([r for r in refs if r.kind != DATASET])
        allowed = set()
        for decision in self.authz.decide_each(principal, action, refs, lookup):
            if decision.allowed and decision.resource.named is not None:
                allowed.add(decision.resource.named[1])
        return [item for item, i in zip(items, ids, strict=True) if i and str(i) in allowed]

    async def _allowed_on_workspace(self, principal: Principal, action: str) -> bool:
        refs = [ResourceRef(WORKSPACE, DEFAULT_WORKSPACE)]
        lookup = await self.prefetch(refs)
        return all(d.allowed for d in self.authz.decide_each(principal, action, refs, lookup))

    async def _page(self, request, call, parsed, principal, token: str, count: int):
        """The next upstream page, asked for `count` items."""
        if "params:query" in parsed.flags or call.method == "GET":
            pairs = [
                (k, v)
                for k, v in parse_qsl(
                    request.scope["query_string"].decode("ascii"), keep_blank_values=True
                )
                if k not in ("page_token", "max_results")
            ]
            pairs += [("page_token", token), ("max_results", str(count))]
            follow = body_request(request, query=urlencode(pairs).encode("ascii"))
        else:
            params = _body_params(call)
            for key in ("pageToken", "maxResults"):
                params.pop(key, None)
            params["page_token"], params["max_results"] = token, count
            follow = body_request(request, body=json.dumps(params).encode())
        response = await self.forwarder.forward(follow, principal)
        if response.status_code != 200:
            await _drain(response)
            return None
        return await read_json(response)


def body_request(
    request: Request, *, body: bytes | None = None, query: bytes | None = None
) -> Request:
    """A copy of `request` with another body and/or query string (same path and caller)."""
    scope = dict(request.scope)
    if query is not None:
        scope["query_string"] = query
    content = body if body is not None else b""
    headers = [
        (k, v)
        for k, v in request.scope["headers"]
        if k.lower() not in (b"content-length", b"transfer-encoding")
    ]
    if content:
        headers.append((b"content-length", str(len(content)).encode()))
    scope["headers"] = headers
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": content, "more_body": False}

    copy = Request(scope, receive)
    copy.state.request_id = getattr(request.state, "request_id", None)
    return copy


def _max_results(call: Call, parsed: ParsedRequest) -> int | None:
    if "params:query" in parsed.flags or call.method == "GET":
        value = dict(parse_qsl(_query(call))).get("max_results")
    else:
        params = _body_params(call)
        value = params.get("max_results", params.get("maxResults"))
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


async def read_json(response: Response) -> dict | None:
    return _decode_json(await _drain(response), response)


def _decode_json(raw: bytes, response: Response) -> dict | None:
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in response.raw_headers}
    if headers.get("content-encoding", "identity").lower() == "gzip":
        raw = gzip.decompress(raw)
    elif headers.get("content-encoding", "identity").lower() != "identity":
        return None
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def _drain(response: Response) -> bytes:
    chunks = []
    iterator = getattr(response, "body_iterator", None)
    if iterator is None:
        return bytes(response.body)
    try:
        async for chunk in iterator:
            chunks.append(chunk if isinstance(chunk, bytes) else chunk.encode())
    finally:
        if response.background is not None:
            await response.background()
    return b"".join(chunks)


def _unchanged(raw: bytes, original: Response) -> Response:
    """The handler tier's answer as it came (nothing was filtered out of it)."""
    response = Response(raw, status_code=original.status_code)
    response.raw_headers = [
        *((k, v) for k, v in original.raw_headers if k.lower() != b"content-length"),
        (b"content-length", str(len(raw)).encode("latin-1")),
    ]
    return response


def _json(document: dict, original: Response) -> Response:
    keep = [
        (k, v)
        for k, v in original.raw_headers
        if k.lower()
        not in (b"content-length", b"content-encoding", b"content-type", b"transfer-encoding")
    ]
    response = JSONResponse(document, status_code=original.status_code)
    response.raw_headers = [*response.raw_headers, *keep]
    return response


def _refused(action: str) -> Response:
    return forbidden(f"Permission denied: {action}.").to_response()


def narrowed_request(
    request: Request, call: Call, parsed: ParsedRequest, kept: tuple[ResourceRef, ...]
) -> Request:
    """The same request with only the readable experiment ids of a search."""
    keep = {r.id for r in kept}
    specs = [s for s in parsed.route.refs if s.narrow]
    if "params:query" in parsed.flags:
        names = {s.source.removesuffix("[]") for s in specs}
        pairs = parse_qsl(_query(call), keep_blank_values=True)
        pairs = [(k, v) for k, v in pairs if k not in names or v in keep]
        return body_request(request, query=urlencode(pairs).encode("ascii"))
    params = _body_params(call)
    for spec in specs:
        _narrow_field(params, spec.source, keep)
    return body_request(request, body=json.dumps(params).encode())


def _narrow_field(params: dict, source: str, keep: set[str]) -> None:
    head, _, rest = source.partition(".")
    name = head.removesuffix("[]")
    key = name if name in params else camel(name)
    if key not in params:
        return
    if not rest:  # experiment_ids[]
        params[key] = [v for v in params[key] if v in keep]
        return
    # locations[].mlflow_experiment.experiment_id: keep the list entries whose id is kept
    params[key] = [e for e in params[key] if _nested(e, rest) in keep]


def _nested_dict(document: dict, *keys: str) -> dict | None:
    for key in keys:
        document = document.get(key) if isinstance(document, dict) else None
    return document if isinstance(document, dict) else None


def _nested(obj: object, path: str) -> object:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part, obj.get(camel(part)))
    return obj


def _body_params(call: Call) -> dict:
    """The JSON object of a body the parse step read (legacy clients double-encode it)."""
    try:
        params = json.loads(call.body or b"{}")
        if isinstance(params, str):
            params = json.loads(params)
    except ValueError:
        return {}
    return params if isinstance(params, dict) else {}


def _query(call: Call) -> str:
    query = call.query
    return query.decode("ascii") if isinstance(query, bytes) else query
