"""GraphQL, read per root field: which resources a query document reads, or a refusal.

MLflow's `/graphql` serves a read-only schema whose root fields map onto REST calls. A
query is let through only when every root field is one of those below (so each names the
resources it reads). `modelVersions` (a run's registered-model versions, which belong to models
the caller may not read) is let through only as the run page asks it, `mlflowGetRun { run {
modelVersions { name ... } } }` with plain fields and no alias, so the answer can be checked
version by version on its model (gateway/filters.py); anywhere else it is refused. Everything
else — mutations, other root fields, root-level fragments, unreadable variables — is refused.

    root field                          decided as                      on
    mlflowGetExperiment                 GetExperiment                   input.experimentId
    mlflowGetRun                        GetRun                          input.runId | runUuid
    mlflowListArtifacts                 ListArtifacts                   input.runId | runUuid
    mlflowGetMetricHistoryBulkInterval  GetMetricHistoryBulkInterval    input.runIds[]
    mlflowSearchRuns                    SearchRuns                      input.experimentIds[]
    mlflowSearchDatasets                SearchDatasets                  input.experimentIds[]

gateway/pipeline.py decides each of them with its root field's action (for the gateway and the
simulator alike).
"""

from __future__ import annotations

import json

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    parse,
    value_from_ast_untyped,
    visit,
)
from graphql.language import FragmentDefinitionNode, SelectionSetNode, Visitor

from gateway.errors import bad_request, forbidden
from gateway.routing.parse import ResourceRef
from gateway.routing.values import has_unpaired_surrogate
from store.vocabulary import EXPERIMENT, RUN

# root field → (action, kind, input keys holding one id, input key holding a list of ids)
ROOT_FIELDS = {
    "mlflowGetExperiment": ("GetExperiment", EXPERIMENT, ("experimentId",), None),
    "mlflowGetRun": ("GetRun", RUN, ("runId", "runUuid"), None),
    "mlflowListArtifacts": ("ListArtifacts", RUN, ("runId", "runUuid"), None),
    "mlflowGetMetricHistoryBulkInterval": ("GetMetricHistoryBulkInterval", RUN, (), "runIds"),
    "mlflowSearchRuns": ("SearchRuns", EXPERIMENT, (), "experimentIds"),
    "mlflowSearchDatasets": ("SearchDatasets", EXPERIMENT, (), "experimentIds"),
}
_HARMLESS = {"__typename", "test"}
_REFUSED_FIELDS = {"modelVersions", "model_versions"}


def graphql_request_refs(method: str, body: bytes) -> tuple[ResourceRef, ...]:
    """The resources a `/graphql` call reads, or raise GatewayError (queries are read on POST)."""
    return _refs_of(*parse_graphql_request(method, body))


def parse_graphql_request(method: str, body: bytes) -> tuple[DocumentNode, dict]:
    """The query document and variables of a `/graphql` call, or raise GatewayError.

    Whoever calls (administrators too): MLflow's handler fails with a 500 on a GET, on a body
    that is not a JSON object with a `query` string, and on a query that does not parse.
    """
    if method.upper() != "POST":
        raise forbidden("GraphQL queries are checked on POST only.")
    try:
        request = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        raise bad_request("The GraphQL request body is not valid JSON.") from None
    if not isinstance(request, dict) or not isinstance(request.get("query"), str):
        raise bad_request("A GraphQL request needs a 'query' string.")
    if has_unpaired_surrogate(request, body):
        raise bad_request("The GraphQL request holds a string that is not valid Unicode.")
    variables = request.get("variables") or {}
    if not isinstance(variables, dict):
        raise bad_request("GraphQL 'variables' must be an object.")
    if not isinstance(request.get("operationName") or "", str):
        raise bad_request("GraphQL 'operationName' must be a string.")
    try:
        document = parse(request["query"])
    except GraphQLError as exc:
        raise bad_request(f"The GraphQL query does not parse: {exc.message}") from None
    except RecursionError:
        raise bad_request("The GraphQL query nests too deeply.") from None
    return document, variables


def _refs_of(document: DocumentNode, variables: dict) -> tuple[ResourceRef, ...]:
    try:
        return _document_refs(document, variables)
    except RecursionError:
        raise bad_request("The GraphQL query nests too deeply.") from None


def run_model_version_keys(method: str, body: bytes) -> tuple[tuple[str, str, str], ...]:
    """Where a let-through query's answer holds runs' model versions: (root key, run key,
    versions key) per occurrence, as `data[root][run][versions]`."""
    document, _ = parse_graphql_request(method, body)
    found: list[tuple[str, str, str]] = []
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        for root in _fields(definition.selection_set):
            if root.name.value != "mlflowGetRun":
                continue
            for run in _fields(root.selection_set):
                for versions in _fields(run.selection_set):
                    if versions.name.value in _REFUSED_FIELDS:
                        found.append((_key(root), _key(run), _key(versions)))
    return tuple(found)


def _fields(selections: SelectionSetNode | None) -> list[FieldNode]:
    """The fields of a selection set, inline fragments' included (they answer in place)."""
    out: list[FieldNode] = []
    for selection in selections.selections if selections else ():
        if isinstance(selection, FieldNode):
            out.append(selection)
        elif getattr(selection, "selection_set", None) is not None:
            out.extend(_fields(selection.selection_set))
    return out


def _key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value


def _document_refs(document: DocumentNode, variables: dict) -> tuple[ResourceRef, ...]:
    _refuse_nested_fields(document)
    refs: list[ResourceRef] = []
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue  # fragments are walked by _refuse_nested_fields; roots may not use them
        if definition.operation != OperationType.QUERY:
            raise forbidden("GraphQL mutations are not offered.")
        for selection in definition.selection_set.selections:
            if not isinstance(selection, FieldNode):
                raise forbidden("GraphQL fragments at the root of a query are not offered.")
            refs.extend(_root_refs(selection, variables))
    return tuple(dict.fromkeys(refs))


def _root_refs(field: FieldNode, variables: dict) -> list[ResourceRef]:
    name = field.name.value
    if name in _HARMLESS:
        return []
    if name not in ROOT_FIELDS:
        raise forbidden(f"The GraphQL field '{name}' is not offered.")
    action, kind, single_keys, list_key = ROOT_FIELDS[name]
    given = {a.name.value: a.value for a in field.arguments or ()}
    if set(given) - {"input"}:
        raise bad_request(f"Unexpected arguments for '{name}'.")
    value = value_from_ast_untyped(given["input"], variables) if "input" in given else None
    if not isinstance(value, dict):
        raise bad_request(f"'{name}' needs an input object.")
    ids: list[str] = []
    if list_key:
        listed = value.get(list_key)
        if not isinstance(listed, list) or not listed:
            raise bad_request(f"'{name}' must name at least one id in '{list_key}'.")
        ids = listed
    else:
        found = {value.get(k) for k in single_keys} - {None, ""}
        if len(found) != 1:
            raise bad_request(f"'{name}' must name exactly one resource.")
        ids = list(found)
    if not all(isinstance(i, str) and i for i in ids):
        raise bad_request(f"'{name}' ids must be non-empty strings.")
    return [ResourceRef(kind, i, action) for i in ids]


def _refuse_nested_fields(document) -> None:
    class Check(Visitor):
        def enter_field(self, node: FieldNode, _key, _parent, _path, ancestors):
            if node.name.value in _REFUSED_FIELDS and not _checkable_versions(node, ancestors):
                raise _Refused(node.name.value)

    try:
        visit(document, Check())
    except _Refused as refused:
        raise forbidden(f"The GraphQL field '{refused}' is not offered.") from None


def _checkable_versions(node: FieldNode, ancestors) -> bool:
    """`modelVersions` right under `mlflowGetRun { run }` of an operation, selecting `name`
    and only plain fields without aliases: the answer's versions can each be decided."""
    if any(isinstance(a, FragmentDefinitionNode) for a in ancestors):
        return False
    path = [a.name.value for a in ancestors if isinstance(a, FieldNode)]
    if path != ["mlflowGetRun", "run"] or node.name.value != "modelVersions":
        return False
    selections = node.selection_set.selections if node.selection_set else ()
    plain = all(isinstance(s, FieldNode) and s.alias is None for s in selections)
    return plain and any(s.name.value == "name" for s in selections)


class _Refused(Exception):
    pass


__all__ = [
    "ROOT_FIELDS",
    "graphql_request_refs",
    "parse_graphql_request",
    "run_model_version_keys",
]
