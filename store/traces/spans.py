"""Spans of traces: OTLP ingestion (`log_spans`) and reads of whole traces with their spans."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mlflow.entities import Experiment
from mlflow.entities.span import LazySpan
from mlflow.entities.trace import Span, Trace
from mlflow.entities.trace_data import TraceData
from mlflow.entities.trace_info import TraceInfo
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
from mlflow.utils.validation import _validate_trace_tag

from store.dynamo.errors import ConditionFailed, ItemTooLarge
from store.dynamo.expressions import Update
from store.keys import trace_key, trace_pk
from store.traces.items import (
    EMPTY_MAPS,
    EXP_TRACES_PREFIX,
    PARENT,
    RESERVED_TRACE_TAGS,
    SPAN_PREFIX,
    START,
    gsi_sort_key,
    is_live,
    json_value,
    key_attributes,
    other_experiment,
    span_contents,
    span_index_entry,
    span_items,
    trace_artifact_location,
    trace_info_from_item,
    validate_trace_id,
)
from store.tracking.experiments import normalize_experiment_id

_GET_TRACE_RETRIES = 3


class SpansMixin:
    """`log_spans`, `get_trace` and `batch_get_traces` (needs ``self.table``)."""

    # ---- spans (OTLP `/v1/traces` and the client's span export) ------------------------------

    def log_spans(self, location: str, spans: list[Span], tracking_uri=None) -> list[Span]:
        """Store spans of traces of experiment `location`.

        Each trace named is first checked (or created) in `location`; a trace of another
        experiment refuses the whole batch before any span item is written. The span items
        follow, then each trace's info item records its spans with one UpdateItem conditioned
        on the trace's experiment.
        """
        if not spans:
            return []
        location = normalize_experiment_id(location)
        by_trace: dict[str, list[Span]] = defaultdict(list)
        for span in spans:
            by_trace[validate_trace_id(span.trace_id)].append(span)
        self._claim_traces(location, by_trace)
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
        for trace_id, stored in updates.items():
            trace_spans = by_trace[trace_id]
            try:
                self._log_spans_on_trace(trace_id, location, _spans_update(stored), trace_spans)
            except ItemTooLarge:
                # The span index is full (thousands of spans): the spans are kept without it.
                update = _spans_update(stored, with_index=False)
                self._log_spans_on_trace(trace_id, location, update, trace_spans)
        return spans

    def _claim_traces(self, experiment_id: str, by_trace: dict[str, list[Span]]) -> None:
        """Make sure every trace of a span batch is a trace of `experiment_id`: existing ones
        are checked (an owner never changes, so an eventually consistent read is enough), new
        ones are created."""
        keys = (trace_key(t) for t in by_trace)
        found = {i["trace_id"]: i for i in self.table.batch_get(keys, consistent=False)}
        for trace_id in by_trace:
            item = found.get(trace_id)
            if item is not None and str(item["experiment_id"]) != experiment_id:
                raise other_experiment(trace_id)
        experiment = _LazyExperiment(self, experiment_id)
        for trace_id, trace_spans in by_trace.items():
            if not is_live(found.get(trace_id)):
                self._create_trace_info(_skeleton(trace_id, experiment.get(), trace_spans))

    def _log_spans_on_trace(
        self, trace_id: str, experiment_id: str, update: Update, spans: list[Span]
    ) -> None:
        experiment = _LazyExperiment(self, experiment_id)
        skeleton = lambda: _skeleton(trace_id, experiment.get(), spans)  # noqa: E731
        self._write_trace_info(trace_id, experiment_id, update, skeleton, skeleton_only=True)

    def _write_trace_info(
        self,
        trace_id: str,
        experiment_id: str,
        update: Update,
        item: dict | Callable[[], dict],
        *,
        skeleton_only: bool = False,
    ) -> dict:
        """Apply `update` to the trace if it is a live trace of `experiment_id`, else put `item`
        (a new trace, or one deleted from that experiment). The experiment is part of every
        condition, so a trace of another experiment is refused, never moved.

        `item` may be a function (called only when a put is needed); `skeleton_only`: it is an
        empty trace, and `update` is applied to it once it exists.
        """
        update.exists("span_index").equals("experiment_id", experiment_id)  # live, and here
        for _ in range(3):
            try:
                return self.table.update(*trace_key(trace_id), update)
            except ConditionFailed:
                pass
            created = self._create_trace_info(item() if callable(item) else item)
            if created is not None and not skeleton_only:
                return created
        raise MlflowException(f"Could not write trace '{trace_id}'; retry the request.")

    def _create_trace_info(self, item: dict) -> dict | None:
        """Put a new trace info item (over a tombstone of the same experiment); None when a
        live trace of that experiment exists already; a trace of another experiment refused."""
        try:
            self.table.put(
                item,
                condition="attribute_not_exists(pk) OR (#deleted = :yes AND #exp = :exp)",
                names={"#deleted": "deleted", "#exp": "experiment_id"},
                values={":yes": True, ":exp": item["experiment_id"]},
            )
            return item
        except ConditionFailed:
            current = self.table.get(*trace_key(item["trace_id"]))
            if current is not None and str(current["experiment_id"]) != item["experiment_id"]:
                raise other_experiment(item["trace_id"]) from None
            return None

    # ---- reads of whole traces ---------------------------------------------------------------

    def get_trace(self, trace_id: str, *, allow_partial: bool = False) -> Trace:
        for attempt in range(_GET_TRACE_RETRIES):
            items = list(self.table.query(trace_pk(trace_id), consistent=True))
            info = next((i for i in items if i["sk"] == "INFO"), None)
            if not is_live(info):
                raise MlflowException(
                    f"Trace with ID {trace_id} is not found.", RESOURCE_DOES_NOT_EXIST
                )
            self._fill_artifact_locations([info])
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
        self._fill_artifact_locations(infos)
        for info in infos:
            if info.get("tags", {}).get(TraceTagKey.SPANS_LOCATION) != (
                SpansLocation.TRACKING_STORE.value
            ):
                raise _spans_not_in_store()
        # One Query per trace for its spans, sent side by side (the client is thread-safe).
        with ThreadPoolExecutor(max_workers=min(len(infos), 8) or 1) as pool:
            span_rows = list(pool.map(lambda i: self._span_items(i["trace_id"]), infos))
        traces = (
            _trace_from_items(info, rows, allow_partial=False)
            for info, rows in zip(infos, span_rows, strict=True)
        )
        return [t for t in traces if t is not None]

    def _trace_infos(self, items: list[dict]) -> list[TraceInfo]:
        self._fill_artifact_locations(items)
        return [trace_info_from_item(i) for i in items]

    def _fill_artifact_locations(self, items: list[dict]) -> None:
        """Info items written before the store kept each trace's artifact location get it
        derived from their experiment (one read per experiment)."""
        experiments: dict[str, Experiment] = {}
        for item in items:
            if "artifact_location" in item:
                continue
            experiment_id = str(item["experiment_id"])
            if experiment_id not in experiments:
                experiments[experiment_id] = self.get_experiment(experiment_id)
            location = trace_artifact_location(experiments[experiment_id], item["trace_id"])
            item["artifact_location"] = location

    def _span_items(self, trace_id: str) -> list[dict]:
        return list(self.table.query(trace_pk(trace_id), sk_prefix=SPAN_PREFIX))


# ---- helpers -------------------------------------------------------------------------------


class _LazyExperiment:
    """The experiment of a span batch, read only when a trace must be created."""

    def __init__(self, store, experiment_id: str) -> None:
        self._store, self._id, self._experiment = store, experiment_id, None

    def get(self):
        if self._experiment is None:
            self._experiment = self._store.get_experiment(self._id)
        return self._experiment


def _skeleton(trace_id: str, experiment, spans: list[Span]) -> dict:
    """An empty trace info item for spans that arrive before their trace's start_trace."""
    experiment_id = str(experiment.experiment_id)
    first_start_ms = min(s.start_time_ns for s in spans) // 1_000_000
    return {
        **key_attributes(trace_id),
        "trace_id": trace_id,
        "experiment_id": experiment_id,
        "gsi1pk": f"{EXP_TRACES_PREFIX}{experiment_id}",
        "gsi1sk": gsi_sort_key(first_start_ms, trace_id),
        "artifact_location": trace_artifact_location(experiment, trace_id),
        **{name: {} for name in EMPTY_MAPS},
    }


def _spans_update(stored: list[tuple[Span, dict]], *, with_index: bool = True) -> Update:
    """What a batch of spans changes on its trace's info item."""
    update = Update()
    update.set(("tags", TraceTagKey.SPANS_LOCATION), SpansLocation.TRACKING_STORE.value)
    for span, attributes in stored:
        if with_index:
            update.set(("span_index", span.span_id), span_index_entry(span, attributes))
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
        if key in RESERVED_TRACE_TAGS:
            continue  # set by the store only
        if key == TraceTagKey.TRACE_NAME:
            update.set("trace_name", validate_trace_name(value))
        else:
            update.set(("tags", key), value)


def _trace_from_items(info: dict, items: list[dict], *, allow_partial: bool) -> Trace | None:
    trace_info = trace_info_from_item(info)
    if trace_info.tags.get(TraceTagKey.SPANS_LOCATION) != SpansLocation.TRACKING_STORE.value:
        raise _spans_not_in_store()
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


def _spans_not_in_store() -> MlflowTracingException:
    # MLflow's message, but not its INTERNAL_ERROR: the trace has no spans in this store.
    return MlflowTracingException(
        "Trace data not stored in tracking store", error_code=RESOURCE_DOES_NOT_EXIST
    )
