"""Metric history: one item per logged value under `HIST#<run_id>#<key>`, sorted by step, then
time, then value (the sort key holds step and time; the item only the value); read with one
Query per 1 MB."""

from __future__ import annotations

from mlflow.entities.metric import MetricWithRunId
from mlflow.exceptions import MlflowException
from mlflow.store.entities.paged_list import PagedList

from store.dynamo.table import DynamoTable
from store.dynamo.values import float_from_dynamo
from store.search.pagination import next_page_token, page_offset
from store.tracking.items import MetricPoint
from store.tracking.run_keys import history_pk, history_point, history_step_bound


def _by_time(point: MetricPoint) -> tuple:
    return (point.timestamp, point.step, point.rank, point.is_nan)


def _by_step(point: MetricPoint) -> tuple:
    return (point.step, point.timestamp, point.rank, point.is_nan)


class MetricsMixin:
    """Metric-history calls of MLflow's tracking AbstractStore."""

    table: DynamoTable

    def _history(self, run_id: str, key: str, steps: tuple[int, int] | None = None):
        sk_range = None
        if steps is not None:
            sk_range = (history_step_bound(steps[0]), history_step_bound(steps[1]) + "$")
        items = self.table.query(history_pk(run_id, key), sk_range=sk_range, consistent=True)
        return [point_of(key, item) for item in items]

    def get_metric_history(self, run_id, metric_key, max_results=None, page_token=None):
        points = sorted(self._history(run_id, metric_key), key=_by_time)
        offset = page_offset(page_token, "metric_history", [run_id, metric_key])
        end = None if max_results is None else offset + max_results
        return PagedList(
            [p.to_entity() for p in points[offset:end]],
            next_page_token(
                "metric_history", offset, max_results, len(points), [run_id, metric_key]
            ),
        )

    def get_metric_history_bulk(self, run_ids, metric_key, max_results):
        results = []
        for run_id in sorted(set(run_ids)):
            points = sorted(self._history(run_id, metric_key), key=_by_time)
            results += [MetricWithRunId(p.to_entity(), run_id) for p in points]
            if len(results) >= max_results:
                break
        return results[:max_results]

    def get_max_step_for_metric(self, run_id, metric_key):
        items = self.table.query(history_pk(run_id, metric_key), forward=False, limit=1)
        return max((history_point(item["sk"])[0] for item in items), default=0) or 0

    def get_metric_history_bulk_interval_from_steps(self, run_id, metric_key, steps, max_results):
        wanted = set(steps)
        points = sorted(
            (p for p in self._history(run_id, metric_key) if p.step in wanted), key=_by_step
        )
        return [MetricWithRunId(p.to_entity(), run_id) for p in points[:max_results]]

    def get_metric_history_bulk_interval(
        self, run_ids, metric_key, max_results, start_step, end_step
    ):
        if (start_step is None) != (end_step is None):
            raise MlflowException.invalid_parameter_value(
                "Both start_step and end_step must be specified together, "
                "or neither may be specified."
            )
        max_results = max(1, max_results)
        steps = None if start_step is None else (int(start_step), int(end_step))
        results = []
        for run_id in run_ids:
            points = sorted(self._history(run_id, metric_key, steps), key=_by_step)
            results += [
                MetricWithRunId(p.to_entity(), run_id) for p in _sample(points, max_results)
            ]
        return results


def point_of(key: str, item: dict) -> MetricPoint:
    step, timestamp = history_point(item["sk"])
    return MetricPoint(key, float_from_dynamo(item["v"]), timestamp, step)


def _sample(points: list[MetricPoint], max_results: int) -> list[MetricPoint]:
    """The first point of each of `max_results` NTILE buckets, plus the last point (SQL's way)."""
    if not points:
        return []
    total = len(points)
    buckets = min(max_results, total)
    size, larger = divmod(total, buckets)
    sample, index = [], 0
    for bucket in range(buckets):
        sample.append(points[index])
        index += size + (1 if bucket < larger else 0)
    last = points[-1]
    if _identity(sample[-1]) != _identity(last):
        if len(sample) >= max_results:
            sample[-1] = last
        else:
            sample.append(last)
    return sample


def _identity(point: MetricPoint) -> tuple:
    return (point.step, point.timestamp, None if point.is_nan else point.rank, point.is_nan)
