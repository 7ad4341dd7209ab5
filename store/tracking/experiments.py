"""Experiments: create (unique names through claim items), read, search, rename, delete, tags."""

from __future__ import annotations

import contextlib
from functools import partial

from mlflow.entities import Experiment, LifecycleStage, ViewType
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking import SEARCH_MAX_RESULTS_DEFAULT, SEARCH_MAX_RESULTS_THRESHOLD
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local
from mlflow.utils.validation import (
    _parse_experiment_id,
    _validate_experiment_artifact_location_length,
    _validate_experiment_name,
    _validate_experiment_tag,
)

from store.bindings import creation_bindings
from store.dynamo.errors import ConditionFailed
from store.dynamo.expressions import Update
from store.dynamo.schema import GSI1, GSI2
from store.dynamo.table import DynamoTable
from store.keys import experiment_key, name_claim_key
from store.search.pagination import next_page_token, page_offset
from store.tracking.experiment_search import experiment_matcher, sort_experiments
from store.tracking.items import (
    EXPERIMENT_COUNTER,
    EXPERIMENTS_GSI,
    experiment_to_entity,
    padded_experiment_id,
    require_active,
)
from store.tracking.run_keys import ATTRIBUTE, STATUS_COLUMN, filter_pk
from store.vocabulary import EXPERIMENT

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = Experiment.DEFAULT_EXPERIMENT_NAME
# A claim whose experiment is missing or renamed is taken over only after this long, so that a
# creation or rename in progress elsewhere is never mistaken for a crash leftover.
_STALE_CLAIM_MS = 60_000
_ACTIVE = LifecycleStage.ACTIVE
_DELETED = LifecycleStage.DELETED


def normalize_experiment_id(experiment_id) -> str:
    """The canonical id string ("007" → "7"); non-integers are INVALID_PARAMETER_VALUE."""
    return str(_parse_experiment_id(experiment_id))


def validate_max_results(max_results, *, allow_null: bool = False) -> None:
    if (not allow_null and max_results is None) or (max_results is not None and max_results < 1):
        raise MlflowException(
            f"Invalid value {max_results} for parameter 'max_results' supplied. It must be "
            "a positive integer",
            INVALID_PARAMETER_VALUE,
        )
    if max_results is not None and max_results > SEARCH_MAX_RESULTS_THRESHOLD:
        raise MlflowException(
            f"Invalid value {max_results} for parameter 'max_results' supplied. It must be at "
            f"most {SEARCH_MAX_RESULTS_THRESHOLD}",
            INVALID_PARAMETER_VALUE,
        )


class ExperimentsMixin:
    """Experiment calls of MLflow's tracking AbstractStore."""

    table: DynamoTable
    artifact_root_uri: str

    # ---- create -------------------------------------------------------------------------

    def create_experiment(self, name, artifact_location=None, tags=None):
        _validate_experiment_name(name)
        if artifact_location:
            artifact_location = resolve_uri_if_local(artifact_location)
            _validate_experiment_artifact_location_length(artifact_location)
        for tag in tags or []:
            _validate_experiment_tag(tag.key, tag.value)
        counter = self.table.update(*EXPERIMENT_COUNTER, Update().add("value", 1))
        experiment_id = str(counter["value"])
        self._claim_name(name, experiment_id)
        self._put_experiment(experiment_id, name, artifact_location, tags or [])
        return experiment_id

    def _put_experiment(self, experiment_id, name, artifact_location, tags) -> None:
        now = get_current_time_millis()
        pk, sk = experiment_key(experiment_id)
        self.table.put(
            {
                "pk": pk,
                "sk": sk,
                "gsi1pk": EXPERIMENTS_GSI,
                "gsi1sk": padded_experiment_id(experiment_id),
                "experiment_id": experiment_id,
                "name": name,
                "artifact_location": artifact_location
                or append_to_uri_path(self.artifact_root_uri, experiment_id),
                "lifecycle_stage": _ACTIVE,
                "creation_time": now,
                "last_update_time": now,
                "tags": {tag.key: tag.value for tag in tags},
                # role bindings (store/bindings.py): written in this same PutItem
                **creation_bindings(EXPERIMENT),
            },
            condition="attribute_not_exists(pk)",
        )

    def _ensure_default_experiment(self) -> None:
        if self.table.get(*experiment_key(DEFAULT_EXPERIMENT_ID)) is not None:
            return
        try:
            self._claim_name(DEFAULT_EXPERIMENT_NAME, DEFAULT_EXPERIMENT_ID)
        except MlflowException:
            claim = self.table.get(*name_claim_key(DEFAULT_EXPERIMENT_NAME))
            if not claim or claim["experiment_id"] != DEFAULT_EXPERIMENT_ID:
                raise
        # Another process starting at the same time may have created it.
        with contextlib.suppress(ConditionFailed):
            self._put_experiment(DEFAULT_EXPERIMENT_ID, DEFAULT_EXPERIMENT_NAME, None, [])

    def _claim_name(self, name: str, experiment_id: str) -> None:
        """Make `name` belong to `experiment_id`, or raise RESOURCE_ALREADY_EXISTS."""
        claim = {
            "pk": name_claim_key(name)[0],
            "sk": name_claim_key(name)[1],
            "experiment_id": experiment_id,
            "claimed_at": get_current_time_millis(),
        }
        try:
            self.table.put(claim, condition="attribute_not_exists(pk)")
            return
        except ConditionFailed:
            existing = self.table.get(*name_claim_key(name))
        if existing is not None and self._is_stale_claim(existing, name):
            try:
                self.table.put(
                    claim,
                    condition="experiment_id = :old",
                    values={":old": existing["experiment_id"]},
                )
                return
            except ConditionFailed:
                pass
        raise MlflowException(
            f"Experiment(name={name}) already exists.", error_code=RESOURCE_ALREADY_EXISTS
        )

    def _is_stale_claim(self, claim: dict, name: str) -> bool:
        if get_current_time_millis() - claim.get("claimed_at", 0) < _STALE_CLAIM_MS:
            return False
        owner = self.table.get(*experiment_key(claim["experiment_id"]))
        return owner is None or owner["name"] != name

    # ---- read ---------------------------------------------------------------------------

    def get_experiment(self, experiment_id):
        return experiment_to_entity(self._experiment_item(experiment_id, ViewType.ALL))

    def _experiment_item(self, experiment_id, view_type=ViewType.ALL) -> dict:
        experiment_id = normalize_experiment_id(experiment_id or DEFAULT_EXPERIMENT_ID)
        item = self.table.get(*experiment_key(experiment_id))
        if item is None or item["lifecycle_stage"] not in LifecycleStage.view_type_to_stages(
            view_type
        ):
            raise MlflowException(
                f"No Experiment with id={experiment_id} exists", RESOURCE_DOES_NOT_EXIST
            )
        return item

    def get_experiment_by_name(self, experiment_name):
        claim = self.table.get(*name_claim_key(experiment_name))
        if claim is None:
            return None
        item = self.table.get(*experiment_key(claim["experiment_id"]))
        if item is None or item["name"] != experiment_name:
            return None
        return experiment_to_entity(item)

    def search_experiments(
        self,
        view_type=ViewType.ACTIVE_ONLY,
        max_results=SEARCH_MAX_RESULTS_DEFAULT,
        filter_string=None,
        order_by=None,
        page_token=None,
    ):
        validate_max_results(max_results)
        matches = experiment_matcher(filter_string)
        search = [view_type, filter_string, list(order_by or [])]
        offset = page_offset(page_token, "experiments", search)
        stages = set(LifecycleStage.view_type_to_stages(view_type))
        items = [
            item
            for item in self.table.query(EXPERIMENTS_GSI, index=GSI1)
            if item["lifecycle_stage"] in stages and matches(item)
        ]
        ordered = sort_experiments(items, order_by)
        page = ordered[offset : offset + max_results]
        return PagedList(
            [experiment_to_entity(item) for item in page],
            next_page_token("experiments", offset, max_results, len(ordered), search),
        )

    # ---- change -------------------------------------------------------------------------

    def rename_experiment(self, experiment_id, new_name):
        _validate_experiment_name(new_name)
        item = self._experiment_item(experiment_id, ViewType.ALL)
        if item["lifecycle_stage"] != _ACTIVE:
            raise MlflowException("Cannot rename a non-active experiment.", INVALID_STATE)
        old_name = item["name"]
        experiment_id = item["experiment_id"]
        if new_name != old_name:
            self._claim_name(new_name, experiment_id)
        update = Update().set("name", new_name).set("last_update_time", get_current_time_millis())
        update.equals("lifecycle_stage", _ACTIVE).equals("name", old_name)
        try:
            self.table.update(*experiment_key(experiment_id), update)
        except ConditionFailed:
            if new_name != old_name:
                self._release_claim(new_name, experiment_id)
            raise MlflowException(
                f"Experiment {experiment_id} changed while being renamed; retry.", INVALID_STATE
            ) from None
        if new_name != old_name:
            self._release_claim(old_name, experiment_id)

    def _release_claim(self, name: str, experiment_id: str) -> None:
        with contextlib.suppress(ConditionFailed):  # the name already belongs to someone else
            self.table.delete(
                *name_claim_key(name),
                condition="experiment_id = :id",
                values={":id": experiment_id},
            )

    def delete_experiment(self, experiment_id):
        self._set_experiment_stage(experiment_id, ViewType.ACTIVE_ONLY, _DELETED)

    def restore_experiment(self, experiment_id):
        self._set_experiment_stage(experiment_id, ViewType.DELETED_ONLY, _ACTIVE)

    def _set_experiment_stage(self, experiment_id, current: int, target: str) -> None:
        item = self._experiment_item(experiment_id, current)
        experiment_id = item["experiment_id"]
        self._active_experiments.forget(experiment_id)
        now = get_current_time_millis()
        # Runs first: if this stops half-way the experiment keeps its stage and a retry finishes.
        column = filter_pk(experiment_id, ATTRIBUTE, STATUS_COLUMN)
        positions = [entry["sk"] for entry in self.table.query(column, index=GSI2)]
        self.table.fan_out(
            [partial(self._set_run_stage, experiment_id, p, target, now=now) for p in positions]
        )
        try:
            update = Update().set("lifecycle_stage", target).set("last_update_time", now)
            update.equals("lifecycle_stage", item["lifecycle_stage"])
            self.table.update(*experiment_key(experiment_id), update)
        except ConditionFailed:
            raise MlflowException(
                f"No Experiment with id={experiment_id} exists", RESOURCE_DOES_NOT_EXIST
            ) from None

    # ---- tags ---------------------------------------------------------------------------

    def set_experiment_tag(self, experiment_id, tag):
        _validate_experiment_tag(tag.key, tag.value)
        update = Update().set(("tags", tag.key), tag.value)
        self._change_experiment_tags(experiment_id, update, tag.key)

    def delete_experiment_tag(self, experiment_id, key):
        update = Update().remove(("tags", key)).exists(("tags", key))
        self._change_experiment_tags(experiment_id, update, key)

    def _change_experiment_tags(self, experiment_id, update: Update, key: str) -> None:
        experiment_id = normalize_experiment_id(experiment_id or DEFAULT_EXPERIMENT_ID)
        update.equals("lifecycle_stage", _ACTIVE)
        try:
            self.table.update(*experiment_key(experiment_id), update)
        except ConditionFailed:
            item = self._experiment_item(experiment_id, ViewType.ALL)
            require_active("experiment", experiment_id, item["lifecycle_stage"])
            raise MlflowException(
                f"No tag with name: {key} in experiment with id {experiment_id}",
                error_code=RESOURCE_DOES_NOT_EXIST,
            ) from None
