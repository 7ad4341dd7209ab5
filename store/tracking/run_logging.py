"""log_param, log_metric, log_batch: each writes only the items it changes.

- a param is one item, put on condition that it is new or holds the same value (the first
  value wins, as in MLflow);
- a metric point is one history item (idempotent: keyed by step, time and value) and, when it
  is the newest of its key, an entry in one of the run's metric buckets
  (store/tracking/metric_buckets.py);
- a tag is one item, put whatever it held (the last writer wins, as in MLflow).

`log_batch` refuses, before writing anything, what MLflow refuses and a param whose stored
value differs; it then writes the new params, then the metrics and tags together. Each write is
atomic on its item and idempotent, so a batch repeated after a failure converges to the whole
batch (store/README.md, "log_batch").
"""

from __future__ import annotations

from functools import partial

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from mlflow.utils.validation import (
    _validate_batch_log_data,
    _validate_batch_log_limits,
    _validate_metric,
    _validate_param,
    _validate_param_keys_unique,
    _validate_run_id,
)

from store.dynamo.errors import ConditionFailed, within_item_limit
from store.dynamo.table import DynamoTable
from store.dynamo.values import float_to_dynamo
from store.tracking.items import MetricPoint
from store.tracking.metric_buckets import Layout, RunBuckets
from store.tracking.run_items import param_item, tag_item
from store.tracking.run_keys import history_pk, history_sk
from store.tracking.run_locator import RunLocation
from store.tracking.runs import attributed

_PARAM_CONDITION = "attribute_not_exists(sk) OR v = :v"


class RunLoggingMixin:
    """Params, metrics and batches of MLflow's tracking AbstractStore."""

    table: DynamoTable

    def log_param(self, run_id, param):
        param = _validate_param(param.key, param.value)
        location = self._active_location(run_id)
        item = param_item(location.experiment_id, location.position, param.key, param.value)
        try:
            with within_item_limit(f"Param '{param.key}' of run {run_id}"):
                self.table.put(item, condition=_PARAM_CONDITION, values={":v": param.value})
        except ConditionFailed:
            stored = self.table.get(item["pk"], item["sk"])
            raise MlflowException(
                f"Changing param values is not allowed. Param with key='{param.key}' was "
                f"already logged with value='{(stored or {}).get('v')}' for run ID='{run_id}'. "
                f"Attempted logging new value '{param.value}'.",
                INVALID_PARAMETER_VALUE,
            ) from None

    def log_metric(self, run_id, metric):
        self._log(run_id, [metric], [], [], path_prefix=False)

    def log_batch(self, run_id, metrics, params, tags):
        _validate_run_id(run_id)
        self._log(run_id, metrics, params, tags, path_prefix=True)

    def _log(self, run_id, metrics, params, tags, *, path_prefix: bool) -> None:
        if path_prefix:
            metrics, params, tags = _validate_batch_log_data(metrics, params, tags)
        else:
            metrics, params, tags = _validate_single_metric(metrics)
        _validate_batch_log_limits(metrics, params, tags)
        _validate_param_keys_unique(params)
        tags = attributed(tags)
        location = self._location(run_id)
        exp, position = location.experiment_id, location.position
        params_items = [param_item(exp, position, p.key, p.value) for p in params]
        reads = [partial(self._active_layout, location)]
        if params_items:
            keys = [(item["pk"], item["sk"]) for item in params_items]
            reads.append(partial(self.table.batch_get, keys))
        layout, *stored = self.table.fan_out(reads)
        stored_values = {item["sk"]: item.get("v") for item in (stored[0] if stored else [])}
        _refuse_changed_params(run_id, params, params_items, stored_values)
        new_params = [item for item in params_items if item["sk"] not in stored_values]
        if new_params:  # first: a param lost to a concurrent writer leaves metrics unwritten
            self.table.fan_out([partial(self._put_param, run_id, item) for item in new_params])
        points = [MetricPoint.from_metric(m) for m in metrics]
        writes = []
        if points:
            hints = self._states.hints(run_id)
            buckets = RunBuckets(self.table, exp, position, run_id, hints)
            writes.append(partial(self._write_latest, buckets, layout, newest_by_key(points)))
            writes.append(partial(self.table.batch_write, history_items(run_id, points)))
        tag_items = _tag_items(location, tags)
        if tag_items:
            writes.append(partial(self._put_tags, run_id, tag_items))
        self.table.fan_out(writes)
        if any(m.model_id is not None for m in metrics) and hasattr(
            self, "_log_logged_model_metrics"
        ):
            self._log_logged_model_metrics(run_id, exp, metrics)

    def _write_latest(self, buckets: RunBuckets, layout: Layout, points: dict) -> None:
        after = buckets.write(layout, points)
        if after is None:
            self._states.forget(buckets.run_id)  # grown by splits: the next write reads it
        elif after != layout:
            self._states.moved_to(buckets.run_id, after)

    def _put_param(self, run_id: str, item: dict) -> None:
        try:
            with within_item_limit(f"A param of run {run_id}"):
                self.table.put(item, condition=_PARAM_CONDITION, values={":v": item["v"]})
        except ConditionFailed:
            stored = self.table.get(item["pk"], item["sk"]) or {}
            key = item.get("k") or item["gsi2pk"].split("#", 3)[-1]
            change = [{"key": key, "old_value": stored.get("v"), "new_value": item["v"]}]
            raise _changed_params(run_id, change) from None

    def _put_tags(self, run_id: str, items: list[dict]) -> None:
        with within_item_limit(f"A tag of run {run_id}"):
            self.table.batch_write(puts=items)


def newest_by_key(points: list[MetricPoint]) -> dict[str, MetricPoint]:
    """Each key's newest point of a batch (the first of equal ones, as the SQL store keeps)."""
    newest: dict[str, MetricPoint] = {}
    for point in points:
        known = newest.get(point.key)
        if known is None or point.is_more_recent_than(known):
            newest[point.key] = point
    return newest


def history_items(run_id: str, points: list[MetricPoint]) -> list[dict]:
    """One item per distinct point (a point logged twice is written once)."""
    items = {}
    for point in points:
        item = history_item(run_id, point)
        items[(item["pk"], item["sk"])] = item
    return list(items.values())


def history_item(run_id: str, point: MetricPoint) -> dict:
    return {
        "pk": history_pk(run_id, point.key),
        "sk": history_sk(point.step, point.timestamp, point.rank, point.is_nan),
        "v": float_to_dynamo(point.value),
    }


def _tag_items(location: RunLocation, tags) -> list[dict]:
    values = {}
    for tag in tags:
        if tag.key == MLFLOW_RUN_NAME and not tag.value:
            continue  # like MLflow: an empty run name changes nothing
        values[tag.key] = tag.value
    exp, position = location.experiment_id, location.position
    return [tag_item(exp, position, key, value) for key, value in values.items()]


def _refuse_changed_params(run_id: str, params, items: list[dict], stored: dict) -> None:
    conflicts = [
        {"key": p.key, "old_value": stored[item["sk"]], "new_value": p.value}
        for p, item in zip(params, items, strict=True)
        if item["sk"] in stored and stored[item["sk"]] != p.value
    ]
    if conflicts:
        raise _changed_params(run_id, conflicts)


def _changed_params(run_id: str, conflicts: list[dict]) -> MlflowException:
    return MlflowException(
        "Changing param values is not allowed. Params were already"
        f" logged='{conflicts}' for run ID='{run_id}'.",
        INVALID_PARAMETER_VALUE,
    )


def _validate_single_metric(metrics):
    for metric in metrics:
        _validate_metric(metric.key, metric.value, metric.timestamp, metric.step)
    return metrics, [], []
