"""Permanent deletion, as `mlflow gc` asks for it: runs, experiments and logged models in the
deleted stage, with their histories (MLflow's gc deletes the artifacts itself).

Every step is idempotent and children go first, the item that lists the resource last: a gc
that stops half-way leaves a deleted run (or experiment, or model) that the next gc finds and
finishes. A run's pieces are found from its items: its metric buckets name its metric keys, so
the histories are deleted before the buckets.
"""

from __future__ import annotations

import contextlib
from functools import partial

from mlflow.entities import LifecycleStage, ViewType
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.utils.time import get_current_time_millis

from store.dynamo.errors import ConditionFailed
from store.dynamo.schema import GSI1, GSI2
from store.dynamo.table import DynamoTable
from store.keys import experiment_key, logged_model_key, name_claim_key, run_key
from store.tracking.items import DATASET_SK_PREFIX
from store.tracking.logged_models import DELETED_LOGGED_MODELS, EXP_LM_PREFIX
from store.tracking.run_keys import (
    DELETED_RUNS,
    bucket_prefix,
    content_pk,
    deleted_run_bound,
    history_pk,
    metrics_pk,
    position_of,
    run_id_of,
)
from store.tracking.run_locator import Locators

_LATEST_TRACE_TIME = 10**15 - 1  # after every trace's request time (milliseconds)


class RunGcMixin:
    """`_get_deleted_runs`, `_hard_delete_run`, `_hard_delete_experiment` and their logged-model
    counterparts: what `mlflow gc` looks for on a tracking store."""

    table: DynamoTable
    _locators: Locators

    def _get_deleted_runs(self, older_than: int = 0) -> list[str]:
        """Ids of the runs deleted at least `older_than` milliseconds ago."""
        bound = deleted_run_bound(get_current_time_millis() - int(older_than))
        entries = self.table.query(DELETED_RUNS, index=GSI1, sk_range=(None, bound))
        return [entry["run_id"] for entry in entries]

    def _hard_delete_run(self, run_id: str) -> None:
        location = self._locators.find(run_id)
        if location is None:
            raise MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)
        core = self.table.get(location.content_pk, location.position)
        if core is not None and core["lifecycle_stage"] != LifecycleStage.DELETED:
            raise MlflowException(
                f"Run {run_id} is not in the deleted stage: only deleted runs can be removed.",
                INVALID_PARAMETER_VALUE,
            )
        self._purge_run(location.experiment_id, location.position)

    def _purge_run(self, experiment_id: str, position: str) -> None:
        """Every item of the run at `position`: histories, buckets, children, core, locator."""
        run_id = run_id_of(position)
        buckets = list(
            self.table.query(metrics_pk(experiment_id), sk_prefix=bucket_prefix(position))
        )
        keys = {key for bucket in buckets for key in bucket.get("m", {})}
        self.table.fan_out([partial(self._purge_history, run_id, key) for key in sorted(keys)])
        self.table.batch_write(deletes=[(b["pk"], b["sk"]) for b in buckets])
        content = list(self.table.query(content_pk(experiment_id), sk_prefix=position))
        children = [(i["pk"], i["sk"]) for i in content if i["sk"] != position]
        self.table.batch_write(deletes=children)
        self.table.delete(content_pk(experiment_id), position)  # the listed item: last but one
        self.table.delete(*run_key(run_id))
        self._locators.forget(run_id)

    def _purge_history(self, run_id: str, key: str) -> None:
        pk = history_pk(run_id, key)
        self.table.batch_write(deletes=[(pk, item["sk"]) for item in self.table.query(pk)])

    def _hard_delete_experiment(self, experiment_id: str) -> None:
        item = self._experiment_item(experiment_id, ViewType.DELETED_ONLY)
        experiment_id = item["experiment_id"]
        positions = {
            position_of(i["sk"])
            for pk in (content_pk(experiment_id), metrics_pk(experiment_id))
            for i in self.table.query(pk, attributes=[("pk",), ("sk",)])
        }  # every run of the experiment, leftovers of interrupted writes included
        self.table.fan_out([partial(self._purge_run, experiment_id, p) for p in sorted(positions)])
        datasets = self.table.query(experiment_key(experiment_id)[0], sk_prefix=DATASET_SK_PREFIX)
        self.table.batch_write(deletes=[(d["pk"], d["sk"]) for d in datasets])
        models = self.table.query(f"{EXP_LM_PREFIX}{experiment_id}", index=GSI1)
        self.table.batch_write(deletes=[(m["pk"], m["sk"]) for m in models])
        self._delete_traces(experiment_id, max_timestamp_millis=_LATEST_TRACE_TIME)
        self.table.delete(*experiment_key(experiment_id))
        # The name is free again, as in the SQL store (unless it was claimed since).
        with contextlib.suppress(ConditionFailed):
            self.table.delete(
                *name_claim_key(item["name"]),
                condition="experiment_id = :id",
                values={":id": experiment_id},
            )

    def _get_deleted_logged_models(self, older_than: int = 0) -> list[str]:
        bound = f"{max(0, get_current_time_millis() - int(older_than)):020d}$"
        entries = self.table.query(DELETED_LOGGED_MODELS, index=GSI2, sk_range=(None, bound))
        return [entry["gsi2sk"].split("#", 1)[1] for entry in entries]

    def _hard_delete_logged_model(self, model_id: str) -> None:
        self._logged_model_item(model_id)  # RESOURCE_DOES_NOT_EXIST when missing
        self.table.delete(*logged_model_key(model_id))
