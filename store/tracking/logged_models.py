"""Logged models (MLflow 3) stored in the DynamoDB table, mixed into the tracking store.

One item per model (``LM#<model_id>`` / ``LM``) holds its attributes, tags, params and metrics,
so a read is one GetItem. Models are listed per experiment on ``gsi1`` (``EXPLM#<exp>``, sorted by
creation time); a search is one Query per experiment, filtered and ordered in memory with the
semantics of MLflow's SQL store. Run ↔ model links (``log_inputs``/``log_outputs``) are items
of the run and belong to the run side of the store.
"""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from functools import partial
from typing import Any

from mlflow.entities import (
    LifecycleStage,
    LoggedModel,
    LoggedModelParameter,
    LoggedModelStatus,
    LoggedModelTag,
    Metric,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)
from mlflow.store.entities.paged_list import PagedList
from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_MODELS
from mlflow.utils.name_utils import _generate_random_name
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.uri import append_to_uri_path
from mlflow.utils.validation import _validate_logged_model_name, _validate_tag

from store.dynamo.errors import ConditionFailed
from store.dynamo.expressions import Update
from store.keys import logged_model_key
from store.search.pagination import next_page_token, page_offset
from store.tracking.items import require_active
from store.tracking.logged_model_search import matches, model_order, parse_experiment_id
from store.tracking.run_items import tag_item
from store.tracking.run_keys import TAG, child_sk

EXP_LM_PREFIX = "EXPLM#"
DELETED_LOGGED_MODELS = "LMS#DELETED"  # gsi2 partition of deleted logged models (mlflow gc)
SEARCH_MAX_RESULTS_DEFAULT = 100
_APPEND_ATTEMPTS = 60
_MAX_SQL_FLOAT = 1.7976931348623157e308


class LoggedModelsMixin:
    """Logged-model calls of MLflow's tracking ``AbstractStore`` (needs ``self.table``)."""

    MODELS_FOLDER_NAME = "models"
    ARTIFACTS_FOLDER_NAME = "artifacts"

    # ---- create / read ------------------------------------------------------------------------

    def create_logged_model(
        self,
        experiment_id: str,
        name: str | None = None,
        source_run_id: str | None = None,
        tags: list[LoggedModelTag] | None = None,
        params: list[LoggedModelParameter] | None = None,
        model_type: str | None = None,
    ) -> LoggedModel:
        _validate_logged_model_name(name)
        experiment = self.get_experiment(experiment_id)
        require_active("experiment", experiment.experiment_id, experiment.lifecycle_stage)
        model_id = f"m-{uuid.uuid4().hex}"
        now = get_current_time_millis()
        pk, sk = logged_model_key(model_id)
        item = {
            "pk": pk,
            "sk": sk,
            "gsi1pk": f"{EXP_LM_PREFIX}{experiment.experiment_id}",
            "gsi1sk": f"{now:015d}#{model_id}",
            "model_id": model_id,
            "experiment_id": str(experiment.experiment_id),
            "name": name or _generate_random_name(),
            "artifact_location": append_to_uri_path(
                experiment.artifact_location,
                self.MODELS_FOLDER_NAME,
                model_id,
                self.ARTIFACTS_FOLDER_NAME,
            ),
            "creation_timestamp": now,
            "last_updated_timestamp": now,
            "status": LoggedModelStatus.PENDING.to_int(),
            "lifecycle_stage": LifecycleStage.ACTIVE,
            "tags": {t.key: t.value for t in tags or []},
            "params": {p.key: p.value for p in params or []},
            "metrics": {},
        }
        if model_type is not None:
            item["model_type"] = model_type
        if source_run_id is not None:
            item["source_run_id"] = source_run_id
        self.table.put(item, condition="attribute_not_exists(pk)")
        return _model_from_item(item)

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        item = self._logged_model_item(model_id, allow_deleted=allow_deleted)
        return _model_from_item(item)

    def _logged_model_item(self, model_id: str, *, allow_deleted: bool = True) -> dict:
        item = self.table.get(*logged_model_key(model_id))
        if item is None or (
            not allow_deleted and item.get("lifecycle_stage") == LifecycleStage.DELETED
        ):
            raise MlflowException(
                f"Logged model with ID '{model_id}' not found.", RESOURCE_DOES_NOT_EXIST
            )
        return item

    # ---- updates (each one UpdateItem conditioned on the model existing) ----------------------

    def _update_logged_model(self, model_id: str, update: Update, *, touch: bool = True) -> dict:
        if touch:  # as MLflow's SQL store: status and lifecycle changes move the update time
            update.set("last_updated_timestamp", get_current_time_millis())
        return self.table.update_existing(
            *logged_model_key(model_id),
            update.exists("pk"),
            missing=MlflowException(
                f"Logged model with ID '{model_id}' not found.", RESOURCE_DOES_NOT_EXIST
            ),
            what=f"Logged model '{model_id}'",
        )

    def finalize_logged_model(self, model_id: str, status: LoggedModelStatus) -> LoggedModel:
        item = self._update_logged_model(model_id, Update().set("status", status.to_int()))
        return _model_from_item(item)

    def delete_logged_model(self, model_id: str) -> None:
        # Listed for `mlflow gc` (gsi2) by the time it was deleted, in the same write.
        now = get_current_time_millis()
        update = Update().set("lifecycle_stage", LifecycleStage.DELETED)
        update.set("last_updated_timestamp", now).set("gsi2pk", DELETED_LOGGED_MODELS)
        self._update_logged_model(
            model_id, update.set("gsi2sk", f"{now:020d}#{model_id}"), touch=False
        )

    def set_logged_model_tags(self, model_id: str, tags: list[LoggedModelTag]) -> None:
        if not tags:
            self._logged_model_item(model_id)
            return
        deduped = {tag.key: tag.value for tag in tags}
        self._set_map_entries(model_id, "tags", deduped)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        try:
            tag = ("tags", key)
            self.table.update(*logged_model_key(model_id), Update().remove(tag).exists(tag))
        except ConditionFailed:
            self._logged_model_item(model_id)  # a missing model says so first
            raise MlflowException(
                f"No tag with key {key!r} found for model with ID {model_id!r}.",
                RESOURCE_DOES_NOT_EXIST,
            ) from None

    def log_logged_model_params(self, model_id: str, params: list[LoggedModelParameter]) -> None:
        if not params:
            self._logged_model_item(model_id)
            return
        self._set_map_entries(model_id, "params", {p.key: p.value for p in params})

    def _set_map_entries(self, model_id: str, attribute: str, entries: dict[str, Any]) -> dict:
        update = Update()
        for key, value in entries.items():
            update.set((attribute, key), value)
        return self._update_logged_model(model_id, update, touch=False)

    def _log_logged_model_metrics(
        self, run_id: str, experiment_id: str, metrics: Iterable[Metric]
    ) -> None:
        """Record metrics that name a `model_id` on their models (one UpdateItem per model)."""
        by_model: dict[str, dict[str, dict]] = defaultdict(dict)
        for metric in metrics:
            if metric.model_id is None:
                continue
            value = float(metric.value)
            if math.isnan(value):
                value = 0.0
            elif math.isinf(value):
                value = _MAX_SQL_FLOAT if value > 0 else -_MAX_SQL_FLOAT
            key = json.dumps([metric.key, metric.timestamp, metric.step, run_id])
            by_model[metric.model_id][key] = {
                "key": metric.key,
                "value": value,
                "timestamp": metric.timestamp,
                "step": metric.step,
                "run_id": run_id,
                "experiment_id": str(experiment_id),
                "dataset_name": metric.dataset_name,
                "dataset_digest": metric.dataset_digest,
            }
        for model_id, entries in by_model.items():
            self._set_map_entries(model_id, "metrics", entries)

    # ---- run ↔ model links ---------------------------------------------------------------------

    def record_logged_model(self, run_id: str, mlflow_model) -> None:
        from mlflow.models import Model

        if not isinstance(mlflow_model, Model):
            raise TypeError(
                f"Argument 'mlflow_model' should be mlflow.models.Model, got '{type(mlflow_model)}'"
            )
        entry = mlflow_model.get_tags_dict()
        location = self._location(run_id)
        sk = child_sk(location.position, TAG, MLFLOW_LOGGED_MODELS)[0]
        for _ in range(_APPEND_ATTEMPTS):
            core, stored = self.table.fan_out(
                [partial(self._core, location), partial(self.table.get, location.content_pk, sk)]
            )
            require_active("run", run_id, core["lifecycle_stage"])
            old = (stored or {}).get("v")
            value = json.dumps(json.loads(old or "[]") + [entry])
            _validate_tag(MLFLOW_LOGGED_MODELS, value)
            item = tag_item(location.experiment_id, location.position, MLFLOW_LOGGED_MODELS, value)
            condition, values = "attribute_not_exists(sk)", None
            if stored is not None:  # appends in parallel are all kept: one put per read
                condition, values = "v = :old", {":old": old}
            try:
                self.table.put(item, condition=condition, values=values)
                return
            except ConditionFailed:
                time.sleep(random.uniform(0, 0.02))
        raise MlflowException(
            f"Run {run_id} is being changed by too many writers at once; retry the call.",
            TEMPORARILY_UNAVAILABLE,
        )

    # ---- search --------------------------------------------------------------------------------

    def search_logged_models(
        self,
        experiment_ids: list[str],
        filter_string: str | None = None,
        datasets: list[dict[str, Any]] | None = None,
        max_results: int | None = None,
        order_by: list[dict[str, Any]] | None = None,
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        if datasets and not all(d.get("dataset_name") for d in datasets):
            raise MlflowException(
                "`dataset_name` in the `datasets` clause must be specified.",
                INVALID_PARAMETER_VALUE,
            )
        experiment_ids = [parse_experiment_id(e) for e in experiment_ids or []]
        if not all(isinstance(o, dict) for o in order_by or []):
            raise MlflowException.invalid_parameter_value(
                "`order_by` must be a list of dictionaries."
            )
        order_by = [dict(o) for o in order_by or []]
        datasets = [dict(d) for d in datasets] if datasets else None
        search = [experiment_ids, filter_string, datasets, order_by]
        offset = page_offset(page_token, "logged_models", search)
        max_results = max_results or SEARCH_MAX_RESULTS_DEFAULT
        from mlflow.utils.search_logged_model_utils import parse_filter_string  # heavy: lazy

        comparisons = parse_filter_string(filter_string)
        sort_key = model_order(order_by)

        items = [
            item
            for experiment_id in dict.fromkeys(experiment_ids)
            for item in self.table.query(f"{EXP_LM_PREFIX}{experiment_id}", index="gsi1")
            if item.get("lifecycle_stage") != LifecycleStage.DELETED
        ]
        matching = [i for i in items if matches(i, comparisons, datasets)]
        matching.sort(key=sort_key)
        page = matching[offset : offset + max_results]
        token = next_page_token("logged_models", offset, max_results, len(matching), search)
        return PagedList([_model_from_item(i) for i in page], token=token)


# ---- item ↔ entity ---------------------------------------------------------------------------


def _model_from_item(item: dict) -> LoggedModel:
    metrics = [
        Metric(
            key=m["key"],
            value=float(m["value"]),
            timestamp=m["timestamp"],
            step=m["step"],
            run_id=m["run_id"],
            dataset_name=m.get("dataset_name"),
            dataset_digest=m.get("dataset_digest"),
            model_id=item["model_id"],
        )
        for m in item.get("metrics", {}).values()
    ]
    return LoggedModel(
        experiment_id=item["experiment_id"],
        model_id=item["model_id"],
        name=item["name"],
        artifact_location=item["artifact_location"],
        creation_timestamp=item["creation_timestamp"],
        last_updated_timestamp=item["last_updated_timestamp"],
        model_type=item.get("model_type"),
        source_run_id=item.get("source_run_id"),
        status=LoggedModelStatus.from_int(item["status"]),
        status_message=item.get("status_message"),
        tags=item.get("tags") or None,
        params=item.get("params") or None,
        metrics=metrics or None,
    )
