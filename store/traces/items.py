"""How traces, spans and assessments are laid out as DynamoDB items, and back to MLflow entities.

A trace's partition is ``TR#<trace_id>``:
- ``INFO``: the trace info (attributes, tags, metadata, assessments, links to runs, and a small
  index of its spans: name, type, status, start, end, parent), listed per experiment on ``gsi1``
  (``EXPTR#<exp>`` / ``<request_time>#<trace_id>``);
- ``SPAN#<span_id>#<part>``: a span's stored JSON, zlib-compressed when large and split into
  parts so that no item comes near the 400 KB limit.

A trace belongs to one experiment for good: every write on ``INFO`` is conditioned on its
``experiment_id``, and deleting a trace leaves a small tombstone ``INFO`` (``deleted``, the
experiment id, nothing else), so the id can never be taken by another experiment.
"""

from __future__ import annotations

import json
import re
import zlib
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from mlflow.entities import Assessment
from mlflow.entities.span_status import SpanStatusCode
from mlflow.entities.trace_info import TraceInfo
from mlflow.entities.trace_location import TraceLocation
from mlflow.entities.trace_state import TraceState
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS
from mlflow.store.tracking.utils.trace_analytics import (
    COST_COLUMN_BY_KEY,
    PROMOTED_TRACE_METADATA_KEYS,
    TOKEN_COLUMN_BY_KEY,
    analytics_columns_from_metadata,
    bounded_model_dimension,
    compatibility_metadata_from_columns,
    finite_float_or_none,
    token_count_or_none,
)
from mlflow.tracing.constant import SpanAttributeKey, SpansLocation, TraceTagKey
from mlflow.tracing.utils import (
    SpanAggregationNode,
    aggregate_cost_from_span_nodes,
    aggregate_usage_from_span_nodes,
)
from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION
from mlflow.utils.uri import append_to_uri_path

from store.keys import trace_key, trace_pk

SPAN_PREFIX = "SPAN#"
EXP_TRACES_PREFIX = "EXPTR#"
TRACES_FOLDER_NAME = "traces"
ARTIFACTS_FOLDER_NAME = "artifacts"
# Maps every trace info item has, so that one entry of them can be set in place.
EMPTY_MAPS = (
    "tags",
    "metadata",
    "assessments",
    "analytics",
    "span_index",
    "linked_runs",
    "linked_prompts",
)
# Large span payloads are compressed, then cut into parts well under DynamoDB's 400 KB.
COMPRESS_ABOVE_BYTES = 8 * 1024
PART_BYTES = 300 * 1024
ANALYTICS_COLUMNS = (
    "session_id",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation_input_tokens_above_1hr",
    "input_cost",
    "output_cost",
    "total_cost",
)
ASSESSMENT_COLUMNS = (
    "assessment_id",
    "trace_id",
    "name",
    "assessment_type",
    "value",
    "error",
    "created_timestamp",
    "last_updated_timestamp",
    "aggregate_value",
    "is_numeric_value",
    "source_type",
    "source_id",
    "run_id",
    "span_id",
    "rationale",
    "overrides",
    "valid",
    "assessment_metadata",
)
MAX_TRACE_ID_LENGTH = 50  # the width of MLflow's SQL column
_TRACE_ID = re.compile(rf"[A-Za-z0-9_.:-]{{1,{MAX_TRACE_ID_LENGTH}}}")
# Tags only the store sets: where the trace's files and spans live. Clients may not set or delete
# them (the artifact location is derived from the experiment, spans are recorded by log_spans).
RESERVED_TRACE_TAGS = frozenset(
    {MLFLOW_ARTIFACT_LOCATION, TraceTagKey.SPANS_LOCATION, TraceTagKey.ARCHIVE_LOCATION}
)
# Index entry of a span inside the INFO item: [name, type, status, start_ns, end_ns, parent_id,
# model, provider, token usage JSON, cost JSON] (entries written before had the first six).
NAME, TYPE, STATUS, START, END, PARENT, MODEL, PROVIDER, USAGE, COST = range(10)


def validate_trace_id(trace_id: str) -> str:
    """A trace id a client chose: it names a key and a folder of the artifact store."""
    valid = isinstance(trace_id, str) and _TRACE_ID.fullmatch(trace_id)
    if not valid or trace_id in {".", ".."}:
        raise MlflowException(
            f"Invalid trace ID {trace_id!r}: expected 1 to {MAX_TRACE_ID_LENGTH} letters, digits, "
            "'-', '_', '.' or ':'.",
            INVALID_PARAMETER_VALUE,
        )
    return trace_id


def gsi_sort_key(request_time: int, trace_id: str) -> str:
    return f"{max(int(request_time), 0):015d}#{trace_id}"


def indexed_request_time(item: dict) -> int:
    """The request time gsi1 sorts a trace by: never below the trace's effective request time
    (spans logged later can only start earlier; negative times are indexed as 0)."""
    return int(item["gsi1sk"][:15])


# ---- trace info ------------------------------------------------------------------------------


def split_metadata(metadata: dict[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    """Metadata without the keys MLflow's SQL store promotes to columns, and those columns."""
    columns = {k: v for k, v in analytics_columns_from_metadata(metadata).items() if v is not None}
    rest = {k: v for k, v in metadata.items() if k not in PROMOTED_TRACE_METADATA_KEYS}
    return rest, columns


def root_span(item: dict) -> list | None:
    for entry in (item.get("span_index") or {}).values():
        if entry[PARENT] is None:
            return entry
    return None


def effective_fields(item: dict) -> dict[str, Any]:
    """Request time, duration and state, derived from the spans until start_trace has set them."""
    index = item.get("span_index") or {}
    request_time = item.get("request_time")
    duration = item.get("execution_duration")
    if not item.get("finalized") and index:
        request_time = min(e[START] for e in index.values()) // 1_000_000
        ends = [e[END] for e in index.values() if e[END] is not None]
        duration = max(ends) // 1_000_000 - request_time if ends else None
    state = item.get("state") or TraceState.IN_PROGRESS.value
    if state in (TraceState.IN_PROGRESS.value, TraceState.STATE_UNSPECIFIED.value):
        root = root_span(item)
        if root is not None:
            state = (
                TraceState.ERROR.value
                if root[STATUS] == SpanStatusCode.ERROR.value
                else TraceState.OK.value
            )
    return {"request_time": request_time or 0, "execution_duration": duration, "state": state}


def trace_tags(item: dict) -> dict[str, str]:
    """The tags a reader sees: the client's, and the reserved ones as the store derives them."""
    stored = {**(item.get("span_tags") or {}), **(item.get("tags") or {})}
    tags = {k: v for k, v in stored.items() if k not in RESERVED_TRACE_TAGS}
    if stored.get(TraceTagKey.SPANS_LOCATION) == SpansLocation.TRACKING_STORE.value:
        tags[TraceTagKey.SPANS_LOCATION] = SpansLocation.TRACKING_STORE.value
    if item.get("artifact_location"):
        tags[MLFLOW_ARTIFACT_LOCATION] = item["artifact_location"]
    return tags


def client_tags(tags: dict[str, str]) -> dict[str, str]:
    """A client's trace tags without the reserved keys (dropped, as MLflow's client drops them)."""
    return {k: v for k, v in tags.items() if k not in RESERVED_TRACE_TAGS}


def refuse_reserved_tag(key: str) -> None:
    if key in RESERVED_TRACE_TAGS:
        raise MlflowException(
            f"The trace tag '{key}' is set by the tracking store and cannot be set or deleted.",
            INVALID_PARAMETER_VALUE,
        )


def is_live(item: dict | None) -> bool:
    """A trace info item that exists and is not the tombstone of a deleted trace."""
    return item is not None and not item.get("deleted")


def tombstone(item: dict) -> dict:
    """What stays of a deleted trace: its id and its experiment (the id stays bound to it)."""
    return {
        **key_attributes(item["trace_id"]),
        "trace_id": item["trace_id"],
        "experiment_id": str(item["experiment_id"]),
        "deleted": True,
    }


def other_experiment(trace_id: str) -> MlflowException:
    return MlflowException(
        f"Trace with ID '{trace_id}' already exists in another experiment; a trace cannot move "
        "between experiments.",
        RESOURCE_ALREADY_EXISTS,
    )


def trace_analytics(item: dict) -> dict[str, Any]:
    """The trace's session, token and cost columns. Totals the client sent with start_trace win;
    without them, the totals of its logged spans (MLflow's tree-aware sum: a rollup parent and
    its children count once), as MLflow's SQL store records them."""
    analytics = dict(item.get("analytics") or {})
    index = item.get("span_index") or {}
    for columns, position, total, number in (
        (TOKEN_COLUMN_BY_KEY, USAGE, aggregate_usage_from_span_nodes, token_count_or_none),
        (COST_COLUMN_BY_KEY, COST, aggregate_cost_from_span_nodes, finite_float_or_none),
    ):
        if any(analytics.get(c) is not None for c in columns.values()):
            continue
        if not any(index_field(e, position) for e in index.values()):
            continue
        nodes = [
            SpanAggregationNode(span_id, e[PARENT], json_object(index_field(e, position)))
            for span_id, e in index.items()
        ]
        for key, value in (total(nodes) or {}).items():
            if key in columns and (value := number(value)) is not None:
                analytics[columns[key]] = value
    return analytics


def index_field(entry: list, position: int) -> Any:
    return entry[position] if len(entry) > position else None


def json_object(text: str | None) -> dict | None:
    """A JSON object stored as text, else None."""
    value = json_value(text) if text is not None else None
    return value if isinstance(value, dict) else None


def trace_metadata(item: dict) -> dict[str, str]:
    metadata = dict(item.get("metadata") or {})
    columns = trace_analytics(item)
    analytics = SimpleNamespace(**{c: columns.get(c) for c in ANALYTICS_COLUMNS})
    metadata.update(compatibility_metadata_from_columns(analytics))
    return metadata


def trace_info_from_item(item: dict) -> TraceInfo:
    fields = effective_fields(item)
    tags = trace_tags(item)
    if item.get("trace_name") is not None:
        tags[TraceTagKey.TRACE_NAME] = item["trace_name"]
    return TraceInfo(
        trace_id=item["trace_id"],
        trace_location=TraceLocation.from_experiment_id(str(item["experiment_id"])),
        request_time=fields["request_time"],
        execution_duration=fields["execution_duration"],
        state=TraceState(fields["state"]),
        tags=tags,
        trace_metadata=trace_metadata(item),
        client_request_id=item.get("client_request_id"),
        request_preview=item.get("request_preview", item.get("root_request_preview")),
        response_preview=item.get("response_preview", item.get("root_response_preview")),
        assessments=assessments_from_item(item),
    )


# ---- assessments ------------------------------------------------------------------------------


def assessment_columns(assessment: Assessment) -> dict[str, Any]:
    """An assessment as the columns of MLflow's SQL store (ids and times filled in)."""
    from mlflow.store.tracking.dbmodels.models import SqlAssessments  # heavy: lazy

    row = SqlAssessments.from_mlflow_entity(assessment)
    return {c: getattr(row, c) for c in ASSESSMENT_COLUMNS if getattr(row, c) is not None}


def assessment_from_columns(columns: dict[str, Any]) -> Assessment:
    values = {c: columns.get(c) for c in ASSESSMENT_COLUMNS}
    values["valid"] = bool(values["valid"]) if values["valid"] is not None else True
    values["is_numeric_value"] = bool(values["is_numeric_value"])
    from mlflow.store.tracking.dbmodels.models import SqlAssessments

    return SqlAssessments(**values).to_mlflow_entity()


def assessments_from_item(item: dict) -> list[Assessment]:
    columns = sorted(
        (item.get("assessments") or {}).values(),
        key=lambda c: (c.get("created_timestamp", 0), c["assessment_id"]),
    )
    return [assessment_from_columns(c) for c in columns]


# ---- spans -------------------------------------------------------------------------------------


def span_items(trace_id: str, span_id: str, content: str) -> list[dict]:
    """The items holding one span's stored JSON."""
    data: bytes | str = content
    raw = content.encode()
    compressed = len(raw) > COMPRESS_ABOVE_BYTES
    if compressed:
        data = zlib.compress(raw, 6)
    if isinstance(data, str) and len(raw) <= PART_BYTES:
        chunks: list[bytes | str] = [data]
    else:
        blob = data if isinstance(data, bytes) else raw
        chunks = [blob[i : i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)]
    pk = trace_pk(trace_id)
    return [
        {
            "pk": pk,
            "sk": f"{SPAN_PREFIX}{span_id}#{n:04d}",
            "span_id": span_id,
            "part": n,
            "parts": len(chunks),
            "zlib": compressed,
            "data": chunk,
        }
        for n, chunk in enumerate(chunks)
    ]


def span_contents(items: list[dict]) -> dict[str, str]:
    """Span id → stored JSON, from the span items of one trace (parts joined, inflated)."""
    parts: dict[str, list[dict]] = defaultdict(list)
    for item in items:
        parts[item["span_id"]].append(item)
    contents = {}
    for span_id, chunks in parts.items():
        chunks.sort(key=lambda c: c["part"])
        expected = chunks[0]["parts"]
        chunks = chunks[:expected]
        if len(chunks) < expected:
            continue  # a span still being written
        if len(chunks) == 1 and isinstance(chunks[0]["data"], str):
            contents[span_id] = chunks[0]["data"]
            continue
        blob = b"".join(
            c["data"] if isinstance(c["data"], bytes) else c["data"].encode() for c in chunks
        )
        contents[span_id] = (zlib.decompress(blob) if chunks[0]["zlib"] else blob).decode()
    return contents


def span_index_entry(span, attributes: dict[str, Any]) -> list:
    """A span's index entry; `attributes` as stored (JSON text values)."""
    usage = json_object(attributes.get(SpanAttributeKey.CHAT_USAGE))
    cost = json_object(attributes.get(SpanAttributeKey.LLM_COST))
    return [
        span.name,
        span.span_type,
        span.status.status_code.value
        if hasattr(span.status.status_code, "value")
        else str(span.status.status_code),
        int(span.start_time_ns),
        int(span.end_time_ns) if span.end_time_ns is not None else None,
        span.parent_id,
        bounded_model_dimension(json_value(attributes.get(SpanAttributeKey.MODEL))),
        bounded_model_dimension(json_value(attributes.get(SpanAttributeKey.MODEL_PROVIDER))),
        json.dumps(usage) if usage is not None else None,
        json.dumps(cost) if cost is not None else None,
    ]


def json_value(value: Any) -> Any:
    """A span attribute as MLflow stores it: JSON text decoded, anything else as it is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def trace_artifact_location(experiment, trace_id: str) -> str:
    return append_to_uri_path(
        experiment.artifact_location, TRACES_FOLDER_NAME, trace_id, ARTIFACTS_FOLDER_NAME
    )


def key_attributes(trace_id: str) -> dict[str, str]:
    pk, sk = trace_key(trace_id)
    return {"pk": pk, "sk": sk}
