"""Runs: create, read, change status and stage, tags.

A run is a collection of small items (store/tracking/run_keys.py): no write reads or rewrites
the whole run, so what a call costs does not grow with the run. A change reads the run's core
item (≤ 1 KB, strongly consistent) to check that the run exists and is active, then writes only
the items it changes, each in one request. Bad input is refused before anything is written.
"""

from __future__ import annotations

import uuid
from functools import partial

from mlflow.entities import LifecycleStage, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME, MLFLOW_USER
from mlflow.utils.name_utils import _generate_random_name
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.uri import append_to_uri_path
from mlflow.utils.validation import _validate_tag

from store.dynamo.errors import ConditionFailed, within_item_limit
from store.dynamo.expressions import Update
from store.dynamo.table import DynamoTable
from store.handler.identity import current_principal
from store.tracking.experiments import DEFAULT_EXPERIMENT_ID, normalize_experiment_id
from store.tracking.items import (
    dataset_refs,
    require_active,
    run_name_from_tags,
    run_to_entity,
    run_to_info,
)
from store.tracking.metric_buckets import Layout, empty_bucket
from store.tracking.run_items import (
    RunView,
    assemble,
    core_item,
    hidden_name_keys,
    locator_item,
    tag_item,
)
from store.tracking.run_keys import (
    DELETED_RUNS,
    TAG,
    bucket_prefix,
    child_sk,
    content_pk,
    deleted_run_sk,
    filter_sk,
    run_id_of,
    run_position,
)
from store.tracking.run_locator import Locators, RunLocation
from store.tracking.run_states import Recent, RunStates

ARTIFACTS_FOLDER_NAME = "artifacts"
_ACTIVE = LifecycleStage.ACTIVE
_DELETED = LifecycleStage.DELETED


class RunsMixin:
    """Run calls of MLflow's tracking AbstractStore (create, read, change, tags)."""

    table: DynamoTable
    _locators: Locators
    _states: RunStates
    _active_experiments: Recent[dict]

    # ---- create and read ----------------------------------------------------------------

    def create_run(self, experiment_id, user_id, start_time, tags, run_name):
        if start_time is None:  # MLflow's RunInfo refuses it; refuse before writing anything
            raise MlflowException("start_time cannot be None")
        experiment = self._active_experiment_for_runs(experiment_id)
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
        exp = experiment["experiment_id"]
        position = run_position(start_time, run_id)
        artifact_uri = append_to_uri_path(
            experiment["artifact_location"], run_id, ARTIFACTS_FOLDER_NAME
        )
        fields = {
            "run_id": run_id,
            "experiment_id": exp,
            "user_id": user_id,
            "status": RunStatus.to_string(RunStatus.RUNNING),
            "start_time": start_time,
            "end_time": None,
            "deleted_time": None,
            "lifecycle_stage": _ACTIVE,
            "artifact_uri": artifact_uri,
        }
        values = {tag.key: tag.value for tag in tags}
        children = [tag_item(exp, position, key, value) for key, value in values.items()]
        # The core last: until it exists no reader sees the run (its other items are ignored).
        with within_item_limit(f"A tag of run {run_id}"):
            self.table.batch_write(
                puts=[
                    locator_item(run_id, exp, position, artifact_uri),
                    empty_bucket(exp, position, 0, 0),
                    *children,
                ]
            )
        core = core_item(position, fields)
        self.table.put(core, condition="attribute_not_exists(sk)")
        self._locators.remember(RunLocation(run_id, exp, position, artifact_uri))
        return run_to_entity(assemble([core, *sorted(children, key=_sk)], [])[0], {})

    def _active_experiment_for_runs(self, experiment_id) -> dict:
        """The experiment a run is created in, refused unless active (read once a moment)."""
        experiment_id = normalize_experiment_id(experiment_id or DEFAULT_EXPERIMENT_ID)
        experiment = self._active_experiments.get(experiment_id)
        if experiment is None:
            experiment = self._experiment_item(experiment_id, ViewType.ALL)
            require_active("experiment", experiment_id, experiment["lifecycle_stage"])
            self._active_experiments.put(experiment_id, experiment)
        return experiment

    def get_run(self, run_id):
        run = self._run_view(self._location(run_id))
        if run is None:
            raise _run_not_found(run_id)
        return run_to_entity(run, self._datasets_for([run]))

    def _run_view(self, location: RunLocation, *, consistent: bool = True) -> RunView | None:
        """The whole run: one Query of its content and one of its metric buckets, together."""
        content, buckets = self.table.fan_out(
            [
                partial(_all, location.content_pk, location.position, consistent, self.table),
                partial(
                    _all,
                    location.metrics_pk,
                    bucket_prefix(location.position),
                    consistent,
                    self.table,
                ),
            ]
        )
        runs = assemble(content, buckets)
        return runs[0] if runs else None

    def _location(self, run_id) -> RunLocation:
        location = self._locators.find(run_id) if run_id else None
        if location is None:
            raise _run_not_found(run_id)
        return location

    def _core(self, location: RunLocation) -> dict:
        core = self.table.get(location.content_pk, location.position)
        if core is None:
            raise _run_not_found(location.run_id)
        return core

    def _active_location(self, run_id) -> RunLocation:
        """Where an active run lives (a deleted run is refused)."""
        location = self._location(run_id)
        self._active_layout(location)
        return location

    def _active_layout(self, location: RunLocation) -> Layout:
        """The metric-bucket layout of an active run: remembered for a moment after a read of
        its core (store/tracking/run_states.py), so a training loop's writes read nothing."""
        layout = self._states.layout(location.run_id)
        if layout is None:
            core = self._core(location)
            check_active(core)
            layout = Layout.of(core)
            self._states.remember(location.run_id, layout)
        return layout

    def _datasets_for(self, runs: list[dict]) -> dict[tuple[str, str], dict]:
        keys = dataset_refs(runs)
        if not keys:
            return {}
        return {(d["pk"], d["sk"]): d for d in self.table.batch_get(keys)}

    # ---- change -------------------------------------------------------------------------

    def update_run_info(self, run_id, run_status, end_time, run_name):
        location = self._location(run_id)
        update = Update()
        if run_status is not None:
            status = RunStatus.to_string(run_status)
            update.set("status", status).set("gsi2sk", filter_sk(status, location.position))
        if end_time is not None:
            update.set("end_time", end_time)
        if update:
            change = partial(self._update_active_core, location, update)
        else:
            change = partial(self._active, location)
        name_key = (location.content_pk, child_sk(location.position, TAG, MLFLOW_RUN_NAME)[0])
        read_name = partial(self.table.get, *name_key) if not run_name else (lambda: None)
        core, name_item = self.table.fan_out([change, read_name])
        if run_name:
            self.table.put(tag_item(location.experiment_id, location.position, *_name(run_name)))
        name = run_name or (name_item or {}).get("v")
        return run_to_info({**core, "name": name})

    def _update_active_core(self, location: RunLocation, update: Update) -> dict:
        update.equals("lifecycle_stage", _ACTIVE)
        try:
            return self.table.update(location.content_pk, location.position, update)
        except ConditionFailed:
            check_active(self._core(location))  # deleted: MLflow's refusal; gone: not found
            return self.table.update(location.content_pk, location.position, update)

    def _active(self, location: RunLocation) -> dict:
        core = self._core(location)
        check_active(core)
        return core

    def delete_run(self, run_id):
        location = self._location(run_id)
        self._set_run_stage(location.experiment_id, location.position, _DELETED, strict=True)

    def restore_run(self, run_id):
        location = self._location(run_id)
        self._set_run_stage(location.experiment_id, location.position, _ACTIVE, strict=True)

    def _set_run_stage(
        self, experiment_id: str, position: str, stage: str, *, strict: bool = False, now=None
    ) -> None:
        """One UpdateItem of the core: the stage, the deletion time and the deleted-runs
        listing `mlflow gc` reads (also used for every run of a deleted or restored experiment)."""
        now = get_current_time_millis() if now is None else now
        self._states.forget(run_id_of(position))
        update = Update().set("lifecycle_stage", stage).exists("pk")
        if stage == _DELETED:
            update.set("deleted_time", now).set("gsi1pk", DELETED_RUNS)
            update.set("gsi1sk", deleted_run_sk(now, run_id_of(position)))
        else:
            update.set("deleted_time", None).remove("gsi1pk").remove("gsi1sk")
        try:
            self.table.update(content_pk(experiment_id), position, update)
        except ConditionFailed:
            if strict:
                raise _run_not_found(run_id_of(position)) from None

    # ---- tags ---------------------------------------------------------------------------

    def set_tag(self, run_id, tag):
        (tag,) = attributed([_validate_tag(tag.key, tag.value)])
        location = self._active_location(run_id)
        if tag.key == MLFLOW_RUN_NAME and not tag.value:
            return  # like MLflow: an empty run name changes nothing
        with within_item_limit(f"Tag '{tag.key}' of run {run_id}"):
            self.table.put(tag_item(location.experiment_id, location.position, tag.key, tag.value))

    def delete_tag(self, run_id, key):
        location = self._location(run_id)
        sk = child_sk(location.position, TAG, key)[0]
        _, stored = self.table.fan_out(
            [
                partial(self._active_layout, location),
                partial(self.table.get, location.content_pk, sk),
            ]
        )
        missing = MlflowException(
            f"No tag with name: {key} in run with id {run_id}",
            error_code=RESOURCE_DOES_NOT_EXIST,
        )
        if stored is None or stored.get("hidden"):
            raise missing
        try:
            if key != MLFLOW_RUN_NAME:
                self.table.delete(location.content_pk, sk, condition="attribute_exists(sk)")
                return
            # The run keeps its name (as in the SQL store); the tag leaves the tag column.
            hidden = hidden_name_keys(location.experiment_id, location.position, stored["v"])
            update = Update().set("hidden", True).missing("hidden").equals("v", stored["v"])
            for name, value in hidden.items():
                update.set(name, value)
            self.table.update(location.content_pk, sk, update)
        except ConditionFailed:
            raise missing from None


def attributed(tags: list) -> list:
    """With an authenticated caller, `mlflow.user` can only name that caller."""
    principal = current_principal()
    if principal is None:
        return list(tags)
    return [RunTag(t.key, principal.username) if t.key == MLFLOW_USER else t for t in tags]


def check_active(core: dict) -> None:
    require_active("run", core["run_id"], core["lifecycle_stage"])


def _run_not_found(run_id) -> MlflowException:
    return MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)


def _name(run_name: str) -> tuple[str, str]:
    return MLFLOW_RUN_NAME, run_name


def _all(pk: str, prefix: str, consistent: bool, table: DynamoTable) -> list[dict]:
    return list(table.query(pk, sk_prefix=prefix, consistent=consistent))


def _sk(item: dict) -> str:
    return item["sk"]
