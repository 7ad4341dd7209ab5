"""Scorers (LLM judges and code scorers) registered in an experiment, with their versions.

A scorer has a head item under its experiment, ``EXP#<experiment_id>`` / ``SCORER#<name>``
(store/keys.py): its id, the counter that numbers its versions and a copy of its latest
version, so listing an experiment's scorers is one Query. Each version is an item of the
scorer's own partition, ``SCORER#<scorer_id>`` / ``V#<version>``. Registering numbers the new
version with one atomic update of the head, writes the version, then makes it the head's latest
unless a later one got there first. Scorers that use the AI gateway (``gateway:/`` models)
are refused: this deployment does not offer the gateway.
"""

from __future__ import annotations

import contextlib
import json
import uuid

from mlflow.entities import LifecycleStage
from mlflow.entities.scorer import ScorerVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.utils.time import get_current_time_millis

from store.dynamo.errors import ConditionFailed, within_item_limit
from store.dynamo.expressions import Update
from store.dynamo.table import DynamoTable
from store.keys import (
    SCORER_SK_PREFIX,
    SCORER_VERSION_SK_PREFIX,
    experiment_pk,
    scorer_head_key,
    scorer_meta_key,
    scorer_pk,
    scorer_version_key,
)

MAX_SERIALIZED_BYTES = 380_000


class ScorersMixin:
    """The scorer calls of MLflow's tracking AbstractStore (needs ``self.table`` and
    ``get_experiment``)."""

    table: DynamoTable

    def register_scorer(
        self, experiment_id: str, name: str, serialized_scorer: str
    ) -> ScorerVersion:
        from mlflow.genai.scorers.scorer_utils import (
            extract_model_from_serialized_scorer,
            is_gateway_model,
            validate_scorer_model,
            validate_scorer_name,
        )

        validate_scorer_name(name)
        experiment_id = self._active_experiment_id(experiment_id)
        model = extract_model_from_serialized_scorer(json.loads(serialized_scorer))
        validate_scorer_model(model)
        if is_gateway_model(model):
            raise MlflowException(
                "The AI gateway is not offered by this deployment: register the scorer with a "
                "provider model.",
                INVALID_PARAMETER_VALUE,
            )
        if len(serialized_scorer.encode()) > MAX_SERIALIZED_BYTES:
            raise MlflowException(
                f"Scorer '{name}' is larger than the {MAX_SERIALIZED_BYTES} bytes a scorer "
                "version may take here; nothing was registered.",
                INVALID_PARAMETER_VALUE,
            )
        head = self.table.update(
            *scorer_head_key(experiment_id, name),
            Update()
            .set_if_missing("scorer_id", str(uuid.uuid4()))
            .set_if_missing("experiment_id", experiment_id)
            .set_if_missing("name", name)
            .add("vcount", 1),
        )
        version = ScorerVersion(
            experiment_id=experiment_id,
            scorer_name=name,
            scorer_version=int(head["vcount"]),
            serialized_scorer=serialized_scorer,
            creation_time=get_current_time_millis(),
            scorer_id=head["scorer_id"],
        )
        meta_pk, meta_sk = scorer_meta_key(version.scorer_id)  # the same values every time
        self.table.put({"pk": meta_pk, "sk": meta_sk, "experiment_id": experiment_id, "name": name})
        pk, sk = scorer_version_key(version.scorer_id, version.scorer_version)
        with within_item_limit(f"Scorer '{name}'"):
            self.table.put(
                {
                    "pk": pk,
                    "sk": sk,
                    "version": version.scorer_version,
                    "serialized_scorer": serialized_scorer,
                    "creation_time": version.creation_time,
                }
            )
            self._make_latest(version)
        return version

    def list_scorers(self, experiment_id: str) -> list[ScorerVersion]:
        experiment_id = self._active_experiment_id(experiment_id)
        return self.list_scorers_across_experiments([experiment_id])

    def list_scorers_across_experiments(self, experiment_ids: list[str]) -> list[ScorerVersion]:
        found = []
        for experiment_id in sorted(dict.fromkeys(map(str, experiment_ids or [])), key=_numeric):
            heads = self.table.query(
                experiment_pk(experiment_id), sk_prefix=SCORER_SK_PREFIX, consistent=True
            )
            found += [_latest_of(h) for h in heads if "latest" in h]
        return found

    def get_scorer(
        self, experiment_id: str, name: str, version: int | None = None
    ) -> ScorerVersion:
        experiment_id = self._active_experiment_id(experiment_id)
        head = self._scorer_head(experiment_id, name)
        if version is None:
            if "latest" not in head:
                raise _scorer_missing(experiment_id, name)
            return _latest_of(head)
        item = self.table.get(*scorer_version_key(head["scorer_id"], int(version)))
        if item is None:
            raise _scorer_missing(experiment_id, name, version)
        return _version_of(head, item)

    def list_scorer_versions(self, experiment_id: str, name: str) -> list[ScorerVersion]:
        experiment_id = self._active_experiment_id(experiment_id)
        head = self._scorer_head(experiment_id, name)
        versions = [_version_of(head, item) for item in self._version_items(head)]
        if not versions:
            raise _scorer_missing(experiment_id, name)
        return versions

    def delete_scorer(self, experiment_id: str, name: str, version: int | None = None) -> None:
        experiment_id = self._active_experiment_id(experiment_id)
        head = self._scorer_head(experiment_id, name)
        if version is None:
            items = list(self._version_items(head))
            if not items:
                raise _scorer_missing(experiment_id, name)
            self.table.delete(*scorer_head_key(experiment_id, name))  # from now on invisible
            self.table.batch_write(deletes=[(i["pk"], i["sk"]) for i in items])
            return
        try:
            self.table.delete(
                *scorer_version_key(head["scorer_id"], int(version)),
                condition="attribute_exists(pk)",
            )
        except ConditionFailed:
            raise _scorer_missing(experiment_id, name, version) from None
        if int(head.get("latest", 0)) == int(version):
            self._replace_latest(head, int(version))

    def get_online_scoring_configs(self, scorer_ids: list[str]) -> list:
        """No scorer has an online configuration here: automatic evaluation needs MLflow's job
        runner and AI gateway, which this deployment does not run."""
        return []

    # ---- internals ------------------------------------------------------------------------

    def _active_experiment_id(self, experiment_id: str) -> str:
        """The experiment's id, as MLflow's store checks it (exists, active)."""
        experiment = self.get_experiment(experiment_id)
        if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
            raise MlflowException(
                f"The experiment {experiment.experiment_id} must be in the 'active' state. "
                f"Current state is {experiment.lifecycle_stage}.",
                INVALID_PARAMETER_VALUE,
            )
        return str(experiment.experiment_id)

    def _scorer_head(self, experiment_id: str, name: str) -> dict:
        head = self.table.get(*scorer_head_key(experiment_id, name))
        if head is None:
            raise _scorer_missing(experiment_id, name)
        return head

    def _version_items(self, head: dict):
        return self.table.query(
            scorer_pk(head["scorer_id"]), sk_prefix=SCORER_VERSION_SK_PREFIX, consistent=True
        )

    def _make_latest(self, version: ScorerVersion) -> None:
        """The head's copy of its latest version, unless a later version is there already."""
        update = _latest_update(version.scorer_version, version._serialized_scorer)
        update.set("latest_creation_time", version.creation_time)
        update.missing_or_below("latest", version.scorer_version).exists("pk")
        key = scorer_head_key(version.experiment_id, version.scorer_name)
        with contextlib.suppress(ConditionFailed):  # a later version is there, or none at all
            self.table.update(*key, update)

    def _replace_latest(self, head: dict, deleted: int) -> None:
        """After the latest version went: the newest remaining one, or none."""
        remaining = next(
            self.table.query(
                scorer_pk(head["scorer_id"]),
                sk_prefix=SCORER_VERSION_SK_PREFIX,
                consistent=True,
                forward=False,
                limit=1,
            ),
            None,
        )
        if remaining is None:
            update = Update().remove("latest").remove("latest_serialized")
            update.remove("latest_creation_time")
        else:
            update = _latest_update(int(remaining["version"]), remaining["serialized_scorer"])
            update.set("latest_creation_time", int(remaining["creation_time"]))
        update.equals("latest", deleted)
        key = scorer_head_key(head["experiment_id"], head["name"])
        with contextlib.suppress(ConditionFailed):  # registered or deleted meanwhile: set there
            self.table.update(*key, update)


def _latest_update(version: int, serialized: str) -> Update:
    return Update().set("latest", version).set("latest_serialized", serialized)


def _latest_of(head: dict) -> ScorerVersion:
    return ScorerVersion(
        experiment_id=str(head["experiment_id"]),
        scorer_name=head["name"],
        scorer_version=int(head["latest"]),
        serialized_scorer=head["latest_serialized"],
        creation_time=int(head["latest_creation_time"]),
        scorer_id=head["scorer_id"],
    )


def _version_of(head: dict, item: dict) -> ScorerVersion:
    return ScorerVersion(
        experiment_id=str(head["experiment_id"]),
        scorer_name=head["name"],
        scorer_version=int(item["version"]),
        serialized_scorer=item["serialized_scorer"],
        creation_time=int(item["creation_time"]),
        scorer_id=head["scorer_id"],
    )


def _scorer_missing(experiment_id: str, name: str, version: int | None = None) -> MlflowException:
    which = f"'{name}'" if version is None else f"'{name}' and version {version}"
    return MlflowException(
        f"Scorer with name {which} not found for experiment {experiment_id}.",
        RESOURCE_DOES_NOT_EXIST,
    )


def _numeric(experiment_id: str) -> tuple[int, str]:
    return (int(experiment_id), "") if experiment_id.isdigit() else (-1, experiment_id)
