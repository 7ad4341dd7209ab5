"""Traces (v3), OTLP spans and assessments stored in the DynamoDB table, mixed into the tracking
store. Item layout: `store/traces/items.py`; spans: `store/traces/spans.py`; search semantics:
`store/traces/search.py`."""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from mlflow.entities.trace_info import TraceInfo
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.store.tracking import (
    MAX_TRACE_LINKS_PER_REQUEST,
    SEARCH_MAX_RESULTS_THRESHOLD,
    SEARCH_TRACES_DEFAULT_MAX_RESULTS,
)
from mlflow.store.tracking.utils.trace_analytics import validate_trace_name
from mlflow.tracing.constant import (
    TraceMetadataKey,
    TraceTagKey,
)
from mlflow.utils.validation import _validate_trace_tag

from store.dynamo.errors import ConditionFailed, within_item_limit
from store.dynamo.expressions import Update
from store.dynamo.schema import GSI1
from store.keys import TRACE_INFO_SK, run_trace_links_pk, trace_key, trace_pk
from store.search.compare import Clause
from store.search.pagination import page_offset, seal_page_token
from store.traces.assessments import AssessmentsMixin
from store.traces.items import (
    EMPTY_MAPS,
    EXP_TRACES_PREFIX,
    assessment_columns,
    client_tags,
    effective_fields,
    gsi_sort_key,
    indexed_request_time,
    is_live,
    key_attributes,
    refuse_reserved_tag,
    span_contents,
    split_metadata,
    tombstone,
    trace_artifact_location,
    trace_info_from_item,
    validate_trace_id,
)
from store.traces.search import (
    RunClause,
    SpanLoader,
    is_run_clause,
    matches,
    needs_spans,
    newest_first,
    parse_filter,
    sort_key,
)
from store.traces.spans import SpansMixin
from store.tracking.items import require_active
from store.unsupported import not_implemented_error


class TracesMixin(SpansMixin, AssessmentsMixin):
    """Trace calls of MLflow's tracking ``AbstractStore`` (needs ``self.table``)."""

    # ---- create ----------------------------------------------------------------------------

    def start_trace(self, trace_info: TraceInfo) -> TraceInfo:
        trace_name = validate_trace_name(trace_info.tags.get(TraceTagKey.TRACE_NAME))
        trace_id = validate_trace_id(trace_info.trace_id)
        experiment = self._active_experiment_for_traces(trace_info.experiment_id)
        experiment_id = str(experiment.experiment_id)
        metadata, analytics = split_metadata(dict(trace_info.trace_metadata))
        metadata[TraceMetadataKey.TRACE_INFO_FINALIZED] = "true"
        tags = client_tags(trace_info.tags)
        tags.pop(TraceTagKey.TRACE_NAME, None)
        assessments = {}
        for assessment in trace_info.assessments:
            columns = assessment_columns(assessment)
            columns["trace_id"] = trace_id
            assessments[columns["assessment_id"]] = columns
        scalars = {
            "gsi1pk": f"{EXP_TRACES_PREFIX}{experiment_id}",
            "gsi1sk": gsi_sort_key(trace_info.request_time, trace_id),
            "artifact_location": trace_artifact_location(experiment, trace_id),
            "request_time": trace_info.request_time,
            "execution_duration": trace_info.execution_duration,
            "state": trace_info.state.value,
            "client_request_id": trace_info.client_request_id,
            "finalized": True,
        }
        update = Update()
        for name, value in scalars.items():
            update.set_or_remove(name, value)
        for name in ("request_preview", "response_preview"):
            if (value := getattr(trace_info, name)) is not None:
                update.set(name, value)
        if TraceTagKey.TRACE_NAME in trace_info.tags:
            update.set_or_remove("trace_name", trace_name)
        for group, entries in (
            ("analytics", analytics),
            ("tags", tags),
            ("metadata", metadata),
            ("assessments", assessments),
        ):
            for key, value in entries.items():
                update.set((group, key), value)
        item = {
            **key_attributes(trace_id),
            "trace_id": trace_id,
            "experiment_id": experiment_id,
            **{k: v for k, v in scalars.items() if v is not None},
            "request_preview": trace_info.request_preview,
            "response_preview": trace_info.response_preview,
            "trace_name": trace_name,
            **{name: {} for name in EMPTY_MAPS},
            "analytics": analytics,
            "tags": tags,
            "metadata": metadata,
            "assessments": assessments,
        }
        item = {k: v for k, v in item.items() if v is not None}
        with within_item_limit(f"Trace '{trace_id}'"):
            written = self._write_trace_info(trace_id, experiment_id, update, item)
        return trace_info_from_item(written)

    def _active_experiment_for_traces(self, experiment_id: str):
        experiment = self.get_experiment(experiment_id)
        require_active("experiment", experiment.experiment_id, experiment.lifecycle_stage)
        return experiment

    # MLflow 2's trace calls (`/api/2.0/mlflow/traces`): clients of MLflow 3 use the v3 calls.
    def deprecated_start_trace_v2(self, *args, **kwargs):
        raise not_implemented_error(type(self).__name__, "deprecated_start_trace_v2")

    def deprecated_end_trace_v2(self, *args, **kwargs):
        raise not_implemented_error(type(self).__name__, "deprecated_end_trace_v2")

    # ---- read --------------------------------------------------------------------------------

    def get_trace_info(self, trace_id: str) -> TraceInfo:
        return self._trace_infos([self._trace_item(trace_id)])[0]

    def _trace_item(self, trace_id: str) -> dict:
        item = self.table.get(*trace_key(trace_id))
        if not is_live(item):
            raise MlflowException(f"Trace with ID '{trace_id}' not found.", RESOURCE_DOES_NOT_EXIST)
        return item

    def batch_get_trace_infos(
        self,
        trace_ids: list[str],
        location: str | None = None,
        experiment_ids: list[str] | None = None,
    ) -> list[TraceInfo]:
        return self._trace_infos(self._trace_items(trace_ids, experiment_ids))

    def _trace_items(self, trace_ids: list[str], experiment_ids: list[str] | None) -> list[dict]:
        if not trace_ids:
            return []
        found = {i["trace_id"]: i for i in self.table.batch_get(trace_key(t) for t in trace_ids)}
        allowed = None if experiment_ids is None else {str(e) for e in experiment_ids}
        return [
            found[t]
            for t in dict.fromkeys(trace_ids)
            if is_live(found.get(t))
            and (allowed is None or str(found[t]["experiment_id"]) in allowed)
        ]

    # ---- search -----------------------------------------------------------------------------

    def search_traces(
        self,
        experiment_ids: list[str] | None = None,
        filter_string: str | None = None,
        max_results: int = SEARCH_TRACES_DEFAULT_MAX_RESULTS,
        order_by: list[str] | None = None,
        page_token: str | None = None,
        model_id: str | None = None,
        locations: list[str] | None = None,
    ) -> tuple[list[TraceInfo], str | None]:
        if experiment_ids and locations:
            raise MlflowException.invalid_parameter_value(
                "`experiment_ids` is deprecated, use `locations` instead."
            )
        locations = [str(e) for e in (locations or experiment_ids or [])]
        if max_results is None or int(max_results) < 1:
            raise MlflowException.invalid_parameter_value(
                f"Invalid value {max_results} for parameter 'max_results' supplied. It must be "
                "a positive integer"
            )
        if int(max_results) > SEARCH_MAX_RESULTS_THRESHOLD:
            raise MlflowException.invalid_parameter_value(
                f"Invalid value {max_results} for parameter 'max_results' supplied. It must be at "
                f"most {SEARCH_MAX_RESULTS_THRESHOLD}"
            )
        order_by = [str(o) for o in order_by or []]  # the handler passes a protobuf container
        clauses = parse_filter(filter_string)
        key = sort_key(order_by)
        search = [locations, filter_string, order_by]
        offset = page_offset(page_token, "traces", search)

        span_loader = self._span_contents_for_search if needs_spans(clauses) else None
        clauses = self._with_pending_links(clauses)
        experiments = list(dict.fromkeys(locations))
        if newest_first(order_by):
            count = offset + int(max_results)
            found = self._newest_traces(experiments, clauses, span_loader, count)
        else:
            found = [
                item
                for experiment_id in experiments
                for item in self.table.query(f"{EXP_TRACES_PREFIX}{experiment_id}", index=GSI1)
                if matches(item, clauses, span_loader)
            ]
        found.sort(key=key)
        page = found[offset : offset + int(max_results)]
        token = None
        if len(page) == int(max_results):
            token = seal_page_token("traces", offset + len(page), search)
        return self._trace_infos(page), token

    def _newest_traces(
        self,
        experiments: list[str],
        clauses: list[Clause],
        span_loader: SpanLoader | None,
        count: int,
    ) -> list[dict]:
        """The matching traces that can be among the `count` newest (ties included): each
        experiment's index read backwards page by page, merged, until `count` matches are newer
        than anything left unread."""
        streams = [self._traces_newest_first(e, count + 1) for e in experiments]
        found: list[dict] = []
        newest: list[int] = []  # min-heap of the `count` latest request times matched
        for item in heapq.merge(*streams, key=indexed_request_time, reverse=True):
            # Unread traces are at most this old (see `indexed_request_time`).
            if len(newest) == count and newest[0] > indexed_request_time(item):
                break
            if not matches(item, clauses, span_loader):
                continue
            found.append(item)
            request_time = effective_fields(item)["request_time"]
            if len(newest) < count:
                heapq.heappush(newest, request_time)
            else:
                heapq.heappushpop(newest, request_time)
        return found

    def _traces_newest_first(self, experiment_id: str, page_size: int) -> Iterator[dict]:
        pk = f"{EXP_TRACES_PREFIX}{experiment_id}"
        return self.table.query(pk, index=GSI1, forward=False, page_size=page_size)

    def _span_contents_for_search(self, item: dict) -> dict[str, str]:
        return span_contents(self._span_items(item["trace_id"]))

    # ---- tags, links, deletes ----------------------------------------------------------------

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        key, value = _validate_trace_tag(key, value)
        refuse_reserved_tag(key)
        update = Update()
        if key == TraceTagKey.TRACE_NAME:
            update.set("trace_name", validate_trace_name(value))
        else:
            update.set(("tags", key), value)
        self._update_existing_trace(trace_id, update)

    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        refuse_reserved_tag(key)
        self._trace_item(trace_id)
        target = "trace_name" if key == TraceTagKey.TRACE_NAME else ("tags", key)
        try:
            self.table.update(*trace_key(trace_id), Update().remove(target).exists(target))
        except ConditionFailed:
            raise MlflowException(
                f"No trace tag with key '{key}' for trace with ID '{trace_id}'",
                RESOURCE_DOES_NOT_EXIST,
            ) from None

    def _update_existing_trace(self, trace_id: str, update: Update) -> dict:
        return self.table.update_existing(
            *trace_key(trace_id),
            update.exists("tags"),
            missing=MlflowException(
                f"Trace with ID '{trace_id}' not found.", RESOURCE_DOES_NOT_EXIST
            ),
            what=f"Trace '{trace_id}'",
        )

    def link_traces_to_run(self, trace_ids: list[str], run_id: str) -> None:
        if not trace_ids:
            return
        if len(trace_ids) > MAX_TRACE_LINKS_PER_REQUEST:
            raise MlflowException(
                f"Cannot link more than {MAX_TRACE_LINKS_PER_REQUEST} traces to a run in "
                f"a single request. Provided {len(trace_ids)} traces.",
                error_code=INVALID_PARAMETER_VALUE,
            )
        run = self.get_run(run_id)
        pending = []
        for trace_id in dict.fromkeys(trace_ids):
            try:
                self._update_existing_trace(trace_id, Update().set(("linked_runs", run_id), True))
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                pending.append(trace_id)
        # A trace logged asynchronously may not exist yet: the link waits on the run's side and
        # counts once a trace of that id exists in the run's own experiment (see search).
        experiment_id = str(run.info.experiment_id)
        self.table.batch_write(
            puts=[
                {"pk": run_trace_links_pk(run_id), "sk": t, "experiment_id": experiment_id}
                for t in pending
            ]
        )

    def unlink_traces_from_run(self, trace_ids: list[str], run_id: str) -> None:
        trace_ids = list(dict.fromkeys(trace_ids or []))
        for trace_id in trace_ids:
            try:
                self._update_existing_trace(trace_id, Update().remove(("linked_runs", run_id)))
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
        self.table.batch_write(deletes=[(run_trace_links_pk(run_id), t) for t in trace_ids])

    def _with_pending_links(self, clauses: list[Clause]) -> list[Clause]:
        """`run_id = X` clauses carrying run X's pending links: trace id → the run's experiment."""
        return [
            RunClause(c.kind, c.key, c.comparator, c.value, self._pending_links(c.value))
            if is_run_clause(c)
            else c
            for c in clauses
        ]

    def _pending_links(self, run_id: str) -> dict[str, str]:
        pk = run_trace_links_pk(run_id)
        return {i["sk"]: str(i["experiment_id"]) for i in self.table.query(pk)}

    def link_prompts_to_trace(self, trace_id: str, prompt_versions: list) -> None:
        if not prompt_versions:
            return
        update = Update()
        for version in prompt_versions:
            update.set(("linked_prompts", f"{version.name}/{version.version}"), True)
        self._update_existing_trace(trace_id, update)

    def _delete_traces(
        self,
        experiment_id: str,
        max_timestamp_millis: int | None = None,
        max_traces: int | None = None,
        trace_ids: list[str] | None = None,
    ) -> int:
        if trace_ids:
            doomed = [i["trace_id"] for i in self._trace_items(trace_ids, [experiment_id])]
        else:
            doomed = []
            upper = f"{int(max_timestamp_millis):015d}#\uffff"
            for item in self.table.query(
                f"{EXP_TRACES_PREFIX}{experiment_id}", index="gsi1", sk_range=("0", upper)
            ):
                if effective_fields(item)["request_time"] <= max_timestamp_millis:
                    doomed.append(item["trace_id"])
                if max_traces is not None and len(doomed) >= max_traces:
                    break
        for trace_id in doomed:
            items = list(self.table.query(trace_pk(trace_id)))
            spans = [(i["pk"], i["sk"]) for i in items if i["sk"] != TRACE_INFO_SK]
            # the info item becomes a tombstone: the id stays bound to its experiment
            leftover = [tombstone(i) for i in items if i["sk"] == TRACE_INFO_SK and is_live(i)]
            self.table.batch_write(puts=leftover, deletes=spans)
        return len(doomed)
