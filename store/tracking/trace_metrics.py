"""Trace metrics (`query_trace_metrics`: the experiment Overview's charts) from the trace index.

Every value is computed from each trace's info item as the per-experiment index (`gsi1`,
``EXPTR#<exp>``, sorted by request time) holds it: the trace's times, state, name, session and
token usage, its span index (name, type, status, start, end) and its assessments. No span
payload is read: one Query per MB of an experiment's traces in the time window. Validation,
filter parsing, grouping, ordering, NULL handling and percentiles are MLflow's SQL store's
(sqlite). Span costs, models and providers are in the index (as MLflow's span columns hold
them); token and cost totals of a trace are `trace_analytics`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from mlflow.entities.trace_metrics import (
    AggregationType,
    MetricAggregation,
    MetricDataPoint,
    MetricViewType,
)
from mlflow.exceptions import MlflowException
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking import MAX_RESULTS_QUERY_TRACE_METRICS
from mlflow.store.tracking.utils.trace_analytics import (
    TRACE_ANALYTICS_COLUMNS_BY_METADATA_KEY,
    finite_float_or_none,
)
from mlflow.tracing.constant import (
    AssessmentMetricSearchKey,
    SpanMetricKey,
    SpanMetricSearchKey,
    TraceMetadataKey,
    TraceMetricKey,
    TraceMetricSearchKey,
    TraceTagKey,
)
from mlflow.utils.search_utils import SearchTraceMetricsUtils

from store.dynamo.schema import GSI1
from store.dynamo.table import DynamoTable
from store.traces.items import (
    COST,
    END,
    EXP_TRACES_PREFIX,
    MODEL,
    NAME,
    PROVIDER,
    START,
    STATUS,
    TYPE,
    effective_fields,
    index_field,
    json_object,
    trace_analytics,
    trace_metadata,
    trace_tags,
)

TIME_BUCKET = "time_bucket"
_TOKENS = {
    TraceMetricKey.INPUT_TOKENS,
    TraceMetricKey.OUTPUT_TOKENS,
    TraceMetricKey.TOTAL_TOKENS,
    TraceMetricKey.CACHE_READ_INPUT_TOKENS,
    TraceMetricKey.CACHE_CREATION_INPUT_TOKENS,
}


class TraceMetricsMixin:
    """`query_trace_metrics` of MLflow's tracking AbstractStore (needs ``self.table``)."""

    table: DynamoTable

    def query_trace_metrics(
        self,
        experiment_ids: list[str],
        view_type: MetricViewType,
        metric_name: str,
        aggregations: list[MetricAggregation],
        dimensions: list[str] | None = None,
        filters: list[str] | None = None,
        time_interval_seconds: int | None = None,
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
        max_results: int = MAX_RESULTS_QUERY_TRACE_METRICS,
        page_token: str | None = None,
    ) -> PagedList[MetricDataPoint]:
        # MLflow's SQL models import its GenAI package, which imports this store: not at import
        from mlflow.store.tracking.utils.sql_trace_metrics_utils import (
            validate_query_trace_metrics_params,
        )

        validate_query_trace_metrics_params(view_type, metric_name, aggregations, dimensions)
        if time_interval_seconds and (start_time_ms is None or end_time_ms is None):
            raise MlflowException.invalid_parameter_value(
                "start_time_ms and end_time_ms are required if time_interval_seconds is set"
            )
        clauses = [SearchTraceMetricsUtils.parse_search_filter(f) for f in filters or []]
        _check_filter_views(clauses, view_type)
        items = self._traces_from(experiment_ids, start_time_ms)
        rows = _rows(view_type, metric_name, items, clauses, start_time_ms, end_time_ms)
        points = aggregate(
            rows, metric_name, aggregations, dimensions or [], time_interval_seconds, max_results
        )
        return PagedList(points, None)

    def _traces_from(self, experiment_ids: Iterable[str], start_ms: int | None) -> Iterator[dict]:
        """Each experiment's traces indexed at or after `start_ms` (an index key is never
        below its trace's effective request time, so none in the window is missed)."""
        low = f"{max(int(start_ms), 0):015d}#" if start_ms is not None else "0"
        for experiment_id in dict.fromkeys(str(e) for e in experiment_ids or []):
            yield from self.table.query(
                f"{EXP_TRACES_PREFIX}{experiment_id}", index=GSI1, sk_range=(low, "\uffff")
            )


def _check_filter_views(clauses: list, view_type: MetricViewType) -> None:
    for clause in clauses:
        if clause.view_type == SpanMetricSearchKey.VIEW_TYPE and view_type != MetricViewType.SPANS:
            raise MlflowException.invalid_parameter_value(
                f"Filtering by span is only supported for {MetricViewType.SPANS} view "
                f"type, got {view_type}",
            )
        if (
            clause.view_type == AssessmentMetricSearchKey.VIEW_TYPE
            and view_type != MetricViewType.ASSESSMENTS
        ):
            raise MlflowException.invalid_parameter_value(
                "Filtering by assessment is only supported for "
                f"{MetricViewType.ASSESSMENTS} view type, got {view_type}",
            )


# ---- rows: (timestamp ms for the bucket, dimension values, aggregated value) ------------------


def _rows(view_type, metric_name, items, clauses, start_ms, end_ms) -> Iterator[tuple]:
    for item in items:
        if item.get("deleted"):
            continue
        fields = effective_fields(item)
        timestamp = int(fields["request_time"])
        if (start_ms is not None and timestamp < start_ms) or (
            end_ms is not None and timestamp > end_ms
        ):
            continue
        if not all(_trace_matches(item, fields, c) for c in clauses if _is_trace_clause(c)):
            continue
        if view_type == MetricViewType.TRACES:
            yield from _trace_rows(item, fields, metric_name, timestamp)
        elif view_type == MetricViewType.SPANS:
            yield from _span_rows(item, metric_name, clauses)
        else:
            yield from _assessment_rows(item, metric_name, clauses, timestamp)


def _trace_rows(item: dict, fields: dict, metric_name: str, timestamp: int) -> Iterator[tuple]:
    analytics = trace_analytics(item)
    dims = {"trace_name": item.get("trace_name"), "trace_status": fields["state"]}
    if metric_name == TraceMetricKey.TRACE_COUNT:
        value = item["trace_id"]
    elif metric_name == TraceMetricKey.SESSION_COUNT:
        value = analytics.get("session_id")
        if value is None:
            return
    elif metric_name == TraceMetricKey.LATENCY:
        value = fields["execution_duration"]
    elif metric_name in _TOKENS:
        value = analytics.get(str(metric_name))
    else:
        value = None
    if value is not None:
        yield timestamp, dims, value


def _span_rows(item: dict, metric_name: str, clauses: list) -> Iterator[tuple]:
    spans = [c for c in clauses if c.view_type == SpanMetricSearchKey.VIEW_TYPE]
    for entry in (item.get("span_index") or {}).values():
        span = {"name": entry[NAME], "type": entry[TYPE], "status": entry[STATUS]}
        if not all(span.get(c.entity) == c.value for c in spans):
            continue
        if metric_name == "span_count":
            value: Any = True
        elif metric_name == "latency" and entry[END] is not None:
            value = (int(entry[END]) - int(entry[START])) // 1_000_000
        elif metric_name in SpanMetricKey.cost_keys():
            cost = json_object(index_field(entry, COST)) or {}
            value = finite_float_or_none(cost.get(metric_name))
            if value is None:
                continue
        else:
            continue
        dims = {
            "span_name": span["name"],
            "span_type": span["type"],
            "span_status": span["status"],
            "span_model_name": index_field(entry, MODEL),
            "span_model_provider": index_field(entry, PROVIDER),
        }
        yield int(entry[START]) // 1_000_000, dims, value


def _assessment_rows(item: dict, metric_name: str, clauses: list, timestamp: int) -> Iterator:
    wanted = [c for c in clauses if c.view_type == AssessmentMetricSearchKey.VIEW_TYPE]
    for row in (item.get("assessments") or {}).values():
        if not row.get("valid", True):
            continue
        facts = {"name": row.get("name"), "type": row.get("assessment_type")}
        if not all(facts.get(c.entity) == c.value for c in wanted):
            continue
        if metric_name == "assessment_count":
            value = row.get("assessment_id")
        else:
            value = row.get("aggregate_value")
        if value is not None:
            dims = {"assessment_name": row.get("name"), "assessment_value": row.get("value")}
            yield timestamp, dims, value


def _is_trace_clause(clause) -> bool:
    return clause.view_type == TraceMetricSearchKey.VIEW_TYPE


def _trace_matches(item: dict, fields: dict, clause) -> bool:
    if clause.entity == TraceMetricSearchKey.STATUS:
        return fields["state"] == clause.value
    if clause.entity == TraceMetricSearchKey.TAG:
        if clause.key == TraceTagKey.TRACE_NAME:
            return item.get("trace_name") == clause.value
        return trace_tags(item).get(clause.key) == clause.value
    if clause.key == TraceMetadataKey.TRACE_SESSION:
        return (item.get("analytics") or {}).get("session_id") == clause.value
    metadata = trace_metadata(item)
    if clause.key in TRACE_ANALYTICS_COLUMNS_BY_METADATA_KEY:
        return metadata.get(clause.key) == clause.value
    if metadata.get(clause.key) == clause.value:
        return True
    return clause.key == TraceMetadataKey.SOURCE_RUN and clause.value in (
        item.get("linked_runs") or {}
    )


# ---- grouping and aggregation (as sqlite computes them) -------------------------------------


def aggregate(
    rows: Iterable[tuple],
    metric_name: str,
    aggregations: list[MetricAggregation],
    dimensions: list[str],
    interval_seconds: int | None,
    max_results: int,
) -> list[MetricDataPoint]:
    groups: dict[tuple, list] = {}
    bucket_ms = interval_seconds * 1000 if interval_seconds else None
    for timestamp, dims, value in rows:
        key = tuple(dims.get(d) for d in dimensions)
        if any(v is None for v in key):
            continue
        if bucket_ms:
            key = ((timestamp // bucket_ms) * bucket_ms, *key)
        groups.setdefault(key, []).append(value)
    if not groups and not dimensions and not bucket_ms:
        groups[()] = []  # an aggregate over no rows is still one row (COUNT 0)
    points = []
    for key in sorted(groups)[:max_results]:
        names = ([TIME_BUCKET] if bucket_ms else []) + list(dimensions)
        shown = dict(zip(names, key, strict=True))
        if bucket_ms:
            moment = datetime.fromtimestamp(key[0] / 1000.0, tz=UTC)
            shown[TIME_BUCKET] = moment.isoformat()
        values = {str(a): _value(a, groups[key], metric_name) for a in aggregations}
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            points.append(MetricDataPoint(metric_name=metric_name, dimensions=shown, values=values))
    return points


def _value(aggregation: MetricAggregation, values: list, metric_name: str) -> float | None:
    kind = aggregation.aggregation_type
    if kind == AggregationType.COUNT:
        distinct = metric_name == TraceMetricKey.SESSION_COUNT
        return float(len(set(values)) if distinct else len(values))
    if not values:
        return None
    numbers = [float(v) for v in values]
    if kind == AggregationType.SUM:
        return sum(numbers)
    if kind == AggregationType.AVG:
        return sum(numbers) / len(numbers)
    if kind == AggregationType.MIN:
        return min(numbers)
    if kind == AggregationType.MAX:
        return max(numbers)
    ordered = sorted(numbers)  # PERCENTILE: linear interpolation, as MLflow's sqlite function
    index = aggregation.percentile_value / 100.0 * (len(ordered) - 1)
    lower = int(index)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (index - lower) * (ordered[upper] - ordered[lower])
