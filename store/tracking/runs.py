"""Runs: one item per run, changed by read-modify-write under an optimistic `version`.

GetRun is one GetItem. Every change reads the item, applies the change, and puts it back on
condition that `version` is unchanged; a concurrent writer makes the put fail and the change is
re-applied to the fresh item, so parallel writers to one run lose nothing. Bad input is refused
before anything is written.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Callable

from mlflow.entities import LifecycleStage, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME, MLFLOW_USER
from mlflow.utils.name_utils import _generate_random_name
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.uri import append_to_uri_path
from mlflow.utils.validation import (
    _validate_batch_log_data,
    _validate_batch_log_limits,
    _validate_metric,
    _validate_param,
    _validate_param_keys_unique,
    _validate_run_id,
    _validate_tag,
)

from store.dynamo.errors import ConditionFailed, within_item_limit
from store.dynamo.expressions import Update
from store.dynamo.table import DynamoTable
from store.handler.identity import current_principal
from store.keys import run_key
from store.tracking.items import (
    MetricPoint,
    dataset_refs,
    history_item,
    require_active,
    run_index_key,
    run_name_from_tags,
    run_to_entity,
    run_to_info,
    runs_of_experiment,
)

ARTIFACTS_FOLDER_NAME = "artifacts"
_MAX_WRITE_ATTEMPTS = 60
_ACTIVE = LifecycleStage.ACTIVE
_DELETED = LifecycleStage.DELETED
_ONE_ITEM = (
    "A run's params, tags and latest metrics live in one item: log fewer or shorter params and "
    "tags on this run."
)


class RunsMixin:
    """Run calls of MLflow's tracking AbstractStore (create, read, change, log)."""

    table: DynamoTable

    # ---- create and read ----------------------------------------------------------------

    def create_run(self, experiment_id, user_id, start_time, tags, run_name):
        if start_time is None:  # MLflow's RunInfo refuses it; refuse before writing anything
            raise MlflowException("start_time cannot be None")
        experiment = self._experiment_item(experiment_id, ViewType.ALL)
        require_active("experiment", experiment["experiment_id"], experiment["lifecycle_stage"])
        tags = list(tags or [])
        principal = current_principal()
        if principal is not None:  # attribute the run to the authenticated caller
            user_id = principal.username
            tags = [t for t in tags if t.key != MLFLOW_USER] + [RunTag(MLFLOW_USER, user_id)]
        run_name_tag = run_name_from_tags(tags)
        if run_name and run_name_tag and run_name != run_name_tag:
            raise MlflowException(
                "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with "
                f"different values (run_name='{run_name}', mlflow.runName='{run_name_tag}').",
                INVALID_PARAMETER_VALUE,
            )
        run_name = run_name or run_name_tag or _generate_random_name()
        if not run_name_tag:
            tags.append(RunTag(MLFLOW_RUN_NAME, run_name))
        run_id = uuid.uuid4().hex
        pk, sk = run_key(run_id)
        item = {
            "pk": pk,
            "sk": sk,
            "gsi1pk": runs_of_experiment(experiment["experiment_id"]),
            "gsi1sk": run_index_key(start_time, run_id),
            "run_id": run_id,
            "experiment_id": experiment["experiment_id"],
            "name": run_name,
            "user_id": user_id,
            "status": RunStatus.to_string(RunStatus.RUNNING),
            "start_time": start_time,
            "end_time": None,
            "deleted_time": None,
            "lifecycle_stage": _ACTIVE,
            "artifact_uri": append_to_uri_path(
                experiment["artifact_location"], run_id, ARTIFACTS_FOLDER_NAME
            ),
            "params": {},
            "tags": {tag.key: tag.value for tag in tags},
            "metrics": {},
            "inputs": [],
            "version": 0,
        }
        self._put_run(item, condition="attribute_not_exists(pk)")
        return run_to_entity(item, {})

    def get_run(self, run_id):
        item = self._run_item(run_id)
        return run_to_entity(item, self._datasets_for([item]))

    def _run_item(self, run_id) -> dict:
        item = self.table.get(*run_key(run_id)) if run_id else None
        if item is None:
            raise MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)
        return item

    def _datasets_for(self, items: list[dict]) -> dict[tuple[str, str], dict]:
        keys = dataset_refs(items)
        if not keys:
            return {}
        return {(d["pk"], d["sk"]): d for d in self.table.batch_get(keys)}

    # ---- change -------------------------------------------------------------------------

    def update_run_info(self, run_id, run_status, end_time, run_name):
        def change(item: dict) -> bool:
            check_active(item)
            if run_status is not None:
                item["status"] = RunStatus.to_string(run_status)
            if end_time is not None:
                item["end_time"] = end_time
            if run_name:
                item["name"] = run_name
                item["tags"][MLFLOW_RUN_NAME] = run_name
            return True

        return run_to_info(self._mutate_run(run_id, change))

    def delete_run(self, run_id):
        self._mutate_run(run_id, lambda item: _set_stage(item, _DELETED, get_current_time_millis()))

    def restore_run(self, run_id):
        self._mutate_run(run_id, lambda item: _set_stage(item, _ACTIVE, None))

    def _set_run_stage(self, run_id: str, stage: str, now: int) -> None:
        """One blind UpdateItem (used for every run of a deleted or restored experiment)."""
        with contextlib.suppress(ConditionFailed):  # the run is gone
            update = Update().set("lifecycle_stage", stage).add("version", 1).exists("pk")
            update.set("deleted_time", now if stage == _DELETED else None)
            self.table.update(*run_key(run_id), update)

    def set_tag(self, run_id, tag):
        (tag,) = _attributed([_validate_tag(tag.key, tag.value)])

        def change(item: dict) -> bool:
            check_active(item)
            return _apply_tags(item, [tag])

        self._mutate_run(run_id, change)

    def delete_tag(self, run_id, key):
        def change(item: dict) -> bool:
            check_active(item)
            if key not in item["tags"]:
                raise MlflowException(
                    f"No tag with name: {key} in run with id {run_id}",
                    error_code=RESOURCE_DOES_NOT_EXIST,
                )
            del item["tags"][key]
            return True

        self._mutate_run(run_id, change)

    def log_param(self, run_id, param):
        param = _validate_param(param.key, param.value)

        def change(item: dict) -> bool:
            check_active(item)
            old = item["params"].get(param.key)
            if old is None:
                item["params"][param.key] = param.value
                return True
            if old != param.value:
                raise MlflowException(
                    f"Changing param values is not allowed. Param with key='{param.key}' was "
                    f"already logged with value='{old}' for run ID='{run_id}'. Attempted logging "
                    f"new value '{param.value}'.",
                    INVALID_PARAMETER_VALUE,
                )
            return False

        self._mutate_run(run_id, change)

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
        tags = _attributed(tags)
        points = [MetricPoint.from_metric(m) for m in metrics]

        def change(item: dict) -> bool:
            check_active(item)
            changed = _apply_params(item, params, run_id)
            changed |= _apply_latest_metrics(item, points)
            return _apply_tags(item, tags) or changed

        item = self._mutate_run(run_id, change)
        history = {(h["pk"], h["sk"]): h for h in (history_item(run_id, p) for p in points)}
        self.table.batch_write(puts=history.values())
        if any(m.model_id is not None for m in metrics) and hasattr(
            self, "_log_logged_model_metrics"
        ):
            self._log_logged_model_metrics(run_id, item["experiment_id"], metrics)

    # ---- the one way a run item changes ---------------------------------------------------

    def _mutate_run(self, run_id, change: Callable[[dict], bool]) -> dict:
        """Apply `change` to the fresh item and write it if nothing else wrote in between."""
        for attempt in range(_MAX_WRITE_ATTEMPTS):
            item = self._run_item(run_id)
            if not change(item):
                return item
            version = item.get("version", 0)
            item["version"] = version + 1
            try:
                self._put_run(item, condition="version = :v", values={":v": version})
                return item
            except ConditionFailed:
                time.sleep(random.uniform(0, min(0.25, 0.002 * 2**attempt)))
        raise MlflowException(
            f"Run {run_id} is being changed by too many writers at once; retry the call.",
            TEMPORARILY_UNAVAILABLE,
        )

    def _put_run(self, item: dict, *, condition: str, values: dict | None = None) -> None:
        # Every put writes the index key, so the index order always follows the start time.
        item["gsi1sk"] = run_index_key(item.get("start_time"), item["run_id"])
        with within_item_limit(f"Run {item['run_id']}", _ONE_ITEM):
            self.table.put(item, condition=condition, values=values)


def _attributed(tags: list) -> list:
    """With an authenticated caller, `mlflow.user` can only name that caller."""
    principal = current_principal()
    if principal is None:
        return list(tags)
    return [RunTag(t.key, principal.username) if t.key == MLFLOW_USER else t for t in tags]


def check_active(item: dict) -> None:
    require_active("run", item["run_id"], item["lifecycle_stage"])


def _set_stage(item: dict, stage: str, deleted_time: int | None) -> bool:
    item["lifecycle_stage"] = stage
    item["deleted_time"] = deleted_time
    return True


def _validate_single_metric(metrics):
    for metric in metrics:
        _validate_metric(metric.key, metric.value, metric.timestamp, metric.step)
    return metrics, [], []


def _apply_params(item: dict, params, run_id: str) -> bool:
    existing = item["params"]
    conflicts = [
        {"key": p.key, "old_value": existing[p.key], "new_value": p.value}
        for p in params
        if p.key in existing and existing[p.key] != p.value
    ]
    if conflicts:
        raise MlflowException(
            "Changing param values is not allowed. Params were already"
            f" logged='{conflicts}' for run ID='{run_id}'.",
            INVALID_PARAMETER_VALUE,
        )
    new = {p.key: p.value for p in params if p.key not in existing}
    existing.update(new)
    return bool(new)


def _apply_latest_metrics(item: dict, points: list[MetricPoint]) -> bool:
    latest = item["metrics"]
    changed = False
    for point in points:
        current = latest.get(point.key)
        if current is None or point.is_more_recent_than(
            MetricPoint.from_attribute(point.key, current)
        ):
            latest[point.key] = point.to_attribute()
            changed = True
    return changed


def _apply_tags(item: dict, tags) -> bool:
    changed = False
    for tag in tags:
        if tag.key == MLFLOW_RUN_NAME:
            if not tag.value:
                continue  # like MLflow: an empty run name changes nothing
            item["name"] = tag.value
        item["tags"][tag.key] = tag.value
        changed = True
    return changed
