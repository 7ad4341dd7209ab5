"""Spans of traces: OTLP ingestion (`log_spans`) and reads of whole traces with their spans."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mlflow.entities.span import LazySpan
from mlflow.entities.trace import Span, Trace
from mlflow.entities.trace_data import TraceData
from mlflow.exceptions import MlflowException, MlflowTracingException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.store.tracking.utils.trace_analytics import validate_session_id, validate_trace_name
from mlflow.tracing.constant import (
    SpanAttributeKey,
    SpansLocation,
    TraceMetadataKey,
    TraceSizeStatsKey,
    TraceTagKey,
)
from mlflow.tracing.otel.translation import translate_span_when_storing
from mlflow.tracing.utils import TraceJSONEncoder
from mlflow.tracing.utils.truncation import _get_truncated_preview
from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION
from mlflow.utils.validation import _validate_trace_tag

from store.dynamo import ConditionFailed, ItemTooLarge
from store.traces_items import (
    EMPTY_MAPS,
    EXP_TRACES_PREFIX,
    PARENT,
    SPAN_PREFIX,
    START,
    TRACE_PREFIX,
    gsi_sort_key,
    json_value,
    key_attributes,
    span_contents,
    span_index_entry,
    span_items,
    trace_artifact_location,
    trace_info_from_item,
    trace_key,
)
from store.traces_update import Update

_GET_TRACE_RETRIES = 3


class SpansMixin:
    """`log_spans`, `get_trace` and `batch_get_traces` (needs ``self.table``)."""

    # ---- spans (OTLP `/v1/traces` and the client's span export) ------------------------------

    def log_spans(self, location: str, spans: list[Span], tracking_uri=None) -> list[Span]:
        if not spans:
            return []
        by_trace: dict[str, list[Span]] = defaultdict(list)
        for span in spans:
            by_trace[span.trace_id].append(span)
        items, updates = [], {}
        for trace_id, trace_spans in by_trace.items():
            stored = []
            for span in trace_spans:
                span_dict = translate_span_when_storing(span)
                content = json.dumps(span_dict, cls=TraceJSONEncoder, ensure_ascii=False)
                items += span_items(trace_id, span.span_id, content)
                stored.append((span, span_dict.get("attributes") or {}))
            updates[trace_id] = stored
        self.table.batch_write(puts=items)
        experiment = _LazyExperiment(self, location)
        for trace_id, stored in updates.items():
            skeleton = {
                **key_attributes(trace_id),
                "trace_id": trace_id,
                "experiment_id": str(location),
                "gsi1pk": f"{EXP_TRACES_PREFIX}{location}",
                "gsi1sk": gsi_sort_key(
                    min(s.start_time_ns for s, _ in stored) // 1_000_000, trace_id
                ),
                **{name: {} for name in EMPTY_MAPS},
            }
            try:
                self._log_spans_on_trace(trace_id, _spans_update(stored), skeleton, experiment)
            except ItemTooLarge:
                # The span index is full (thousands of spans): the spans are kept without it.
                update = _spans_update(stored, with_index=False)
                self._log_spans_on_trace(trace_id, update, skeleton, experiment)
        return spans

    def _log_spans_on_trace(
        self, trace_id: str, update: Update, skeleton: dict, experiment: _LazyExperiment
    ) -> None:
        for _ in range(3):
            try:
                self.table.update(
                    *trace_key(trace_id),
                    update.expression(),
                    condition=f"attribute_exists({update.path('span_index')})",
                    names=update.names,
                    values=update.values,
                )
                return
            except ConditionFailed:
                pass
            skeleton["tags"] = {
                MLFLOW_ARTIFACT_LOCATION: trace_artifact_location(experiment.get(), trace_id)
            }
            try:
                self.table.put(skeleton, condition="attribute_not_exists(pk)")
            except ConditionFailed:
                continue
        raise MlflowException(f"Could not record spans of trace '{trace_id}'; retry the request.")

    # ---- reads of whole traces ---------------------------------------------------------------

    def get_trace(self, trace_id: str, *, allow_partial: bool = False) -> Trace:
        for attempt in range(_GET_TRACE_RETRIES):
            items = list(self.table.query(f"{TRACE_PREFIX}{trace_id}", consistent=True))
            info = next((i for i in items if i["sk"] == "INFO"), None)
            if info is None:
                raise MlflowException(
                    f"Trace with ID {trace_id} is not found.", RESOURCE_DOES_NOT_EXIST
                )
            trace = _trace_from_items(info, items, allow_partial=allow_partial)
            if trace is not None:
                return trace
            if attempt < _GET_TRACE_RETRIES - 1:
                time.sleep(2**attempt)  # spans of this trace are still arriving
        raise MlflowException(
            f"Trace with ID {trace_id} is not fully exported yet, please try again later.",
            RESOURCE_DOES_NOT_EXIST,
        )

    def batch_get_traces(
        self,
        trace_ids: list[str],
        location: str | None = None,
        experiment_ids: list[str] | None = None,
    ) -> list[Trace]:
        infos = self._trace_items(trace_ids, experiment_ids)
        for info in infos:
            if info.get("tags", {}).get(TraceTagKey.SPANS_LOCATION) != (
                SpansLocation.TRACKING_STORE.value
            ):
                raise MlflowTracingException("Trace data not stored in tracking store")
        # One Query per trace for its spans, sent side by side (the client is thread-safe).
        with ThreadPoolExecutor(max_workers=min(len(infos), 8) or 1) as pool:
            span_rows = list(pool.map(lambda i: self._span_items(i["trace_id"]), infos))
        traces = (
            _trace_from_items(info, rows, allow_partial=False)
            for info, rows in zip(infos, span_rows, strict=True)
        )
        return [t for t in traces if t is not None]

    def _span_items(self, trace_id: str) -> list[dict]:
        return list(self.table.query(f"{TRACE_PREFIX}{trace_id}", sk_prefix=SPAN_PREFIX))


# ---- helpers -------------------------------------------------------------------------------


class _LazyExperiment:
    """The experiment of a span batch, read only when a trace must be created."""

    def __init__(self, store, experiment_id: str) -> None:
        self._store, self._id, self._experiment = store, experiment_id, None

    def get(self):
        if self._experiment is None:
            self._experiment = self._store.get_experiment(self._id)
        return self._experiment


def _spans_update(stored: list[tuple[Span, dict]], *, with_index: bool = True) -> Update:
    """What a batch of spans changes on its trace's info item."""
    update = Update()
    update.set(("tags", TraceTagKey.SPANS_LOCATION), SpansLocation.TRACKING_STORE.value)
    for span, attributes in stored:
        if with_index:
            update.set(("span_index", span.span_id), span_index_entry(span))
        _record_span_facts(update, span, attributes)
    return update


def _record_span_facts(update: Update, span: Span, attributes: dict[str, Any]) -> None:
    """What a root span tells about its trace (previews, name, tags, session, user)."""
    session_id = attributes.get(SpanAttributeKey.SESSION_ID)
    if session_id:
        update.set_if_missing(
            ("analytics", "session_id"), validate_session_id(json_value(session_id))
        )
    if user_id := attributes.get("user.id"):
        update.set_if_missing(("metadata", TraceMetadataKey.TRACE_USER), json_value(user_id))
    if span.parent_id is not None:
        return
    if inputs := attributes.get(SpanAttributeKey.INPUTS):
        update.set("root_request_preview", _get_truncated_preview(inputs, role="user"))
    if outputs := attributes.get(SpanAttributeKey.OUTPUTS):
        update.set("root_response_preview", _get_truncated_preview(outputs, role="assistant"))
    prefix = SpanAttributeKey.TRACE_TAG_PREFIX
    for name, raw in attributes.items():
        if not name.startswith(prefix):
            continue
        try:
            key, value = _validate_trace_tag(name[len(prefix) :], str(json_value(raw)))
        except MlflowException:
            continue
        if key == TraceTagKey.TRACE_NAME:
            update.set("trace_name", validate_trace_name(value))
        else:
            update.set(("tags", key), value)


def _trace_from_items(info: dict, items: list[dict], *, allow_partial: bool) -> Trace | None:
    trace_info = trace_info_from_item(info)
    if trace_info.tags.get(TraceTagKey.SPANS_LOCATION) != SpansLocation.TRACKING_STORE.value:
        raise MlflowTracingException("Trace data not stored in tracking store")
    contents = span_contents([i for i in items if i["sk"].startswith(SPAN_PREFIX)])
    index = info.get("span_index") or {}

    def order(span_id: str) -> tuple:
        entry = index.get(span_id)
        if entry is None:
            return (1, 0)
        return (0 if entry[PARENT] is None else 1, entry[START])

    ordered = sorted(contents, key=order)
    if not allow_partial and (stats := trace_info.trace_metadata.get(TraceMetadataKey.SIZE_STATS)):
        expected = json.loads(stats).get(TraceSizeStatsKey.NUM_SPANS, 0)
        if len(ordered) < expected:
            return None
    spans = [LazySpan.from_stored_content(contents[s]) for s in ordered]
    if not allow_partial and not spans:
        return None
    return Trace(info=trace_info, data=TraceData(spans=spans))
