"""MLflow's trace search grammar (filters and order_by) evaluated on trace INFO items.

Parsing is MLflow's own (`SearchTraceUtils`), so the same strings are accepted and refused; each
clause then gets the meaning MLflow's SQL store gives it. Span content and span attribute
clauses need the spans themselves: the caller passes a loader, used only for traces that pass
every other clause.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.store.tracking.utils.trace_analytics import TRACE_ANALYTICS_COLUMNS_BY_METADATA_KEY
from mlflow.tracing.constant import TraceMetadataKey, TraceTagKey
from mlflow.utils.search_utils import SearchTraceUtils

from store.search.compare import Clause, NullsLast, compare
from store.traces.items import (
    NAME,
    STATUS,
    TYPE,
    effective_fields,
    json_value,
    trace_metadata,
    trace_tags,
)

SpanLoader = Callable[[dict], Mapping[str, str]]  # a trace's spans: span id → stored JSON


@dataclass(frozen=True)
class RunClause(Clause):
    """`run_id = X` with run X's links made before their trace existed (trace id → the run's
    experiment): such a link counts only for a trace of the run's own experiment."""

    pending: Mapping[str, str] = field(default_factory=dict)


def is_run_clause(c: Clause) -> bool:
    return (
        c.kind == "request_metadata"
        and c.key == TraceMetadataKey.SOURCE_RUN
        and c.comparator == "="
    )


def parse_filter(filter_string: str | None) -> list[Clause]:
    if not filter_string:
        return []
    clauses = []
    for parsed in SearchTraceUtils.parse_search_filter_for_search_traces(filter_string):
        op = parsed["comparator"].upper()
        clause = Clause(parsed["type"], parsed["key"], op, parsed["value"])
        _validate(clause)
        clauses.append(clause)
    return clauses


def _validate(c: Clause) -> None:
    """Raise the errors MLflow's SQL store raises for a clause it cannot evaluate."""
    if SearchTraceUtils.is_issue(c.kind, c.key, c.comparator):
        return
    if SearchTraceUtils.is_attribute(c.kind, c.key, c.comparator):
        return
    if SearchTraceUtils.is_tag(c.kind, c.comparator):
        if c.key == TraceTagKey.LINKED_PROMPTS:
            if c.comparator != "=":
                raise MlflowException.invalid_parameter_value(
                    f"Invalid comparator '{c.comparator}' for prompts filter. "
                    "Only '=' is supported with format: prompt = \"name/version\""
                )
            if str(c.value).count("/") != 1:
                raise MlflowException.invalid_parameter_value(
                    f"Invalid prompts filter value '{c.value}'. "
                    'Expected format: prompt = "name/version"'
                )
        return
    if SearchTraceUtils.is_request_metadata(c.kind, c.comparator):
        if c.key in TRACE_ANALYTICS_COLUMNS_BY_METADATA_KEY and c.comparator not in (
            "=",
            "!=",
            "IS NULL",
            "IS NOT NULL",
        ):
            raise MlflowException.invalid_parameter_value(
                f"Comparator '{c.comparator}' is not supported for reserved metadata '{c.key}'. "
                "Only '=', '!=', 'IS NULL', and 'IS NOT NULL' are supported."
            )
        return
    if SearchTraceUtils.is_span(c.kind, c.key, c.comparator):
        return
    if SearchTraceUtils.is_assessment(c.kind, c.key, c.comparator):
        return
    raise MlflowException.invalid_parameter_value(f"Invalid search expression type '{c.kind}'")


def needs_spans(clauses: list[Clause]) -> bool:
    return any(c.kind == "span" and c.key not in ("name", "type", "status") for c in clauses)


def matches(item: dict, clauses: list[Clause], load_spans: SpanLoader | None = None) -> bool:
    span_clauses = [c for c in clauses if c.kind == "span"]
    for clause in clauses:
        if clause.kind != "span" and not _matches_clause(item, clause):
            return False
    if not span_clauses:
        return True
    return _some_span_matches(item, span_clauses, load_spans)


def _matches_clause(item: dict, c: Clause) -> bool:
    if c.kind == "issue":
        return any(
            a.get("assessment_type") == "issue" and a.get("name") == c.value
            for a in (item.get("assessments") or {}).values()
        )
    if c.kind == "attribute":
        return compare(_attribute(item, c.key), c.comparator, c.value)
    if c.kind == "tag":
        if c.key == TraceTagKey.TRACE_NAME:
            return _null_or_compare(item.get("trace_name"), c)
        if c.key == TraceTagKey.LINKED_PROMPTS:
            return c.value in (item.get("linked_prompts") or {})
        return _null_or_compare(trace_tags(item).get(c.key), c)
    if c.kind == "request_metadata":
        if c.key == TraceMetadataKey.SOURCE_RUN and c.comparator == "=":
            metadata_run = (item.get("metadata") or {}).get(TraceMetadataKey.SOURCE_RUN)
            pending = getattr(c, "pending", {}).get(item["trace_id"])
            return (
                metadata_run == c.value
                or c.value in (item.get("linked_runs") or {})
                or (pending is not None and pending == str(item["experiment_id"]))
            )
        if c.key == TraceMetadataKey.TRACE_SESSION:
            return _null_or_compare((item.get("analytics") or {}).get("session_id"), c)
        if c.key in TRACE_ANALYTICS_COLUMNS_BY_METADATA_KEY:
            current = trace_metadata(item).get(c.key)
            if c.comparator in ("IS NULL", "IS NOT NULL"):
                return _null_or_compare(current, c)
            equal = current is not None and current == c.value and _is_canonical(c.value)
            return equal if c.comparator == "=" else (current is not None and not equal)
        return _null_or_compare((item.get("metadata") or {}).get(c.key), c)
    return _matches_assessment(item, c)


def _null_or_compare(value: Any, c: Clause) -> bool:
    if c.comparator == "IS NULL":
        return value is None
    if c.comparator == "IS NOT NULL":
        return value is not None
    return compare(value, c.comparator, c.value)


def _is_canonical(value: str) -> bool:
    try:
        return isinstance(json.loads(value), dict)
    except (TypeError, ValueError):
        return False


def _attribute(item: dict, key: str) -> Any:
    fields = effective_fields(item)
    if key == "timestamp_ms":
        return fields["request_time"]
    if key == "execution_time_ms":
        return fields["execution_duration"]
    if key == "end_time_ms":
        return fields["request_time"] + (fields["execution_duration"] or 0)
    if key == "status":
        return fields["state"]
    if key == "request_id":
        return item["trace_id"]
    if key == "experiment_id":
        return int(item["experiment_id"])
    if key in ("client_request_id", "request_preview", "response_preview"):
        return item.get(key)
    raise MlflowException.invalid_parameter_value(f"Invalid attribute key '{key}'")


def _matches_assessment(item: dict, c: Clause) -> bool:
    rows = [
        a
        for a in (item.get("assessments") or {}).values()
        if a.get("assessment_type") == c.kind and a.get("name") == c.key and a.get("valid", True)
    ]
    if c.comparator == "IS NULL":
        return not rows
    if c.comparator == "IS NOT NULL":
        return bool(rows)
    return any(_assessment_value_matches(a, c) for a in rows)


def _assessment_value_matches(row: dict, c: Clause) -> bool:
    if c.comparator in ("<", "<=", ">", ">="):
        return bool(row.get("is_numeric_value")) and compare(
            row.get("aggregate_value"), c.comparator, float(c.value)
        )
    stored = row.get("value")
    if c.comparator in ("=", "!="):
        equal = stored == c.value or stored == json.dumps(c.value)
        return equal if c.comparator == "=" else not equal
    return compare(stored, c.comparator, c.value)


def _some_span_matches(item: dict, clauses: list[Clause], load_spans: SpanLoader | None) -> bool:
    index = item.get("span_index") or {}
    if not needs_spans(clauses):
        return any(all(_index_matches(e, c) for c in clauses) for e in index.values())
    if load_spans is None:
        return False
    for span_id, content in load_spans(item).items():
        # name, type and status as MLflow's span columns hold them (the JSON's status code is
        # "STATUS_CODE_OK"); the index has them for every span it lists
        entry = index.get(span_id) or _entry_from_span(json.loads(content))
        if all(_content_matches(content, entry, c) for c in clauses):
            return True
    return False


def _index_matches(entry: list, c: Clause) -> bool:
    column = {"name": NAME, "type": TYPE, "status": STATUS}[c.key]
    return compare(entry[column], c.comparator, c.value)


def _entry_from_span(span: dict) -> list:
    attributes = span.get("attributes") or {}
    span_type = json_value(attributes.get("mlflow.spanType"))
    status = (span.get("status") or {}).get("code")
    if isinstance(status, str):
        status = status.removeprefix("STATUS_CODE_")
    return [span.get("name"), span_type, status, None, None, None]


def _content_matches(content: str, entry: list, c: Clause) -> bool:
    if c.key in ("name", "type", "status"):
        return _index_matches(entry, c)
    if c.key == "content":
        return compare(content, c.comparator, c.value)
    name = SearchTraceUtils._trim_backticks(c.key[len("attributes.") :])
    if c.comparator == "RLIKE":
        pattern = str(c.value)
        prefix = '"\\\\"' if pattern.startswith("^") else '"\\\\".*'
        suffix = '\\\\"' if pattern.endswith("$") else ""
        pattern = pattern.removeprefix("^").removesuffix("$")
        return compare(content, "RLIKE", f'"{name}": {prefix}{pattern}{suffix}')
    return compare(content, c.comparator, f'%"{name}"{c.value}%')


# ---- order_by ----------------------------------------------------------------------------------


def newest_first(order_by: list[str] | None) -> bool:
    """Whether the order starts with request time descending (as the default does): the order
    the per-experiment index (gsi1) gives read backwards."""
    if not order_by:
        return True
    kind, key, ascending = SearchTraceUtils.parse_order_by_for_search_traces(order_by[0])
    return kind == "attribute" and key == "timestamp_ms" and not ascending


def sort_key(order_by: list[str] | None) -> Callable[[dict], tuple]:
    fields: list[tuple[Callable[[dict], Any], bool]] = []
    seen: set[tuple[str, str]] = set()
    for clause in order_by or []:
        kind, key, ascending = SearchTraceUtils.parse_order_by_for_search_traces(clause)
        if kind == "request_metadata" and key in TRACE_ANALYTICS_COLUMNS_BY_METADATA_KEY:
            raise MlflowException.invalid_parameter_value(
                f"Ordering by reserved metadata '{key}' is not supported because it is "
                "represented by multiple columns."
            )
        if (kind, key) in seen:
            raise MlflowException(f"`order_by` contains duplicate fields: {order_by}")
        seen.add((kind, key))
        fields.append((_order_value(kind, key), ascending))
    if ("attribute", "timestamp_ms") not in seen:
        fields.append((lambda item: effective_fields(item)["request_time"], False))
    if ("attribute", "request_id") not in seen:
        fields.append((lambda item: item["trace_id"], True))
    return lambda item: tuple(NullsLast(get(item), not asc) for get, asc in fields)


def _order_value(kind: str, key: str) -> Callable[[dict], Any]:
    if kind == "attribute":
        return lambda item: _attribute(item, key)
    if kind == "tag" and key == TraceTagKey.TRACE_NAME:
        return lambda item: item.get("trace_name")
    if kind == "tag":
        return lambda item: trace_tags(item).get(key)
    if kind == "request_metadata" and key == TraceMetadataKey.TRACE_SESSION:
        return lambda item: (item.get("analytics") or {}).get("session_id")
    if kind == "request_metadata":
        return lambda item: (item.get("metadata") or {}).get(key)
    raise MlflowException.invalid_parameter_value(f"Invalid identifier type '{kind}'")
