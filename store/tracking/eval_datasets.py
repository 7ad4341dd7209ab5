"""GenAI evaluation datasets: create, read, search, tags and links to experiments.

A dataset is one item, ``EVDS#<id>`` / ``EVDS`` (store/keys.py): its columns, its tags (a map)
and the experiments it is linked to (a string set, the authority on links), listed on ``gsi1``
(``EVDSS``, by creation time) for the search without experiment ids. Each link also has an
entry under its experiment (``EXP#<exp>`` / ``EVDS#<id>``), which is what the search of an
experiment's datasets reads; every dataset found through an entry is checked against its set,
so an entry left behind by an interrupted removal never shows a dataset in an experiment it
left. Records live in their own partition (store/tracking/eval_records.py).

Deleting a dataset first marks it deleted (from then on it is invisible, and the gateway's
ownership answer is "none"), then removes its links and records, then the item; deleting a
dataset that is half deleted finishes the job.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from typing import Any

from mlflow.entities import EvaluationDataset
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.store.entities.paged_list import PagedList
from mlflow.utils.mlflow_tags import MLFLOW_USER
from mlflow.utils.time import get_current_time_millis

from store.dynamo.errors import ConditionFailed, within_item_limit
from store.dynamo.expressions import Update
from store.dynamo.schema import GSI1
from store.dynamo.table import DynamoTable
from store.handler.identity import current_principal
from store.keys import (
    DATASET_LINK_SK_PREFIX,
    EVAL_DATASETS_GSI,
    dataset_link_key,
    eval_dataset_key,
    experiment_key,
    experiment_pk,
    records_pk,
)
from store.search.pagination import next_page_token, page_offset
from store.tracking.eval_dataset_search import (
    dataset_matches,
    dataset_sort_key,
    parse_dataset_filter,
)
from store.tracking.experiments import validate_max_results

DATASET_ID_PREFIX = "d-"
_MAX_NAME_LENGTH = 255


class EvaluationDatasetsMixin:
    """The evaluation-dataset calls of MLflow's tracking AbstractStore (needs ``self.table``)."""

    table: DynamoTable

    # ---- create, read, delete ------------------------------------------------------------------

    def create_dataset(
        self,
        name: str,
        tags: dict[str, Any] | None = None,
        experiment_ids: list[str] | None = None,
    ) -> EvaluationDataset:
        if not isinstance(name, str) or not name or len(name) > _MAX_NAME_LENGTH:
            raise MlflowException.invalid_parameter_value(
                f"A dataset name must be 1 to {_MAX_NAME_LENGTH} characters."
            )
        experiments = [str(e) for e in dict.fromkeys(experiment_ids or [])]
        self._require_experiments(experiments)
        now = get_current_time_millis()
        tags = attributed_tags({k: _tag_value(v) for k, v in (tags or {}).items()})
        author = author_of(tags)
        dataset_id = f"{DATASET_ID_PREFIX}{uuid.uuid4().hex}"
        item = {
            **_key_attributes(dataset_id),
            "gsi1pk": EVAL_DATASETS_GSI,
            "gsi1sk": f"{now:015d}#{dataset_id}",
            "dataset_id": dataset_id,
            "name": name,
            "digest": dataset_digest(name, now),
            "created_time": now,
            "last_update_time": now,
            "created_by": author,
            "last_updated_by": author,
            "tags": tags,
            "num_records": 0,
        }
        if experiments:
            item["experiments"] = set(experiments)
        with within_item_limit(f"Evaluation dataset '{name}'"):
            self.table.put(
                {k: v for k, v in item.items() if v is not None},
                condition="attribute_not_exists(pk)",
            )
        self.table.batch_write(puts=[_link(e, dataset_id, now) for e in experiments])
        dataset = dataset_from_item(item)
        dataset.experiment_ids = experiments
        return dataset

    def get_dataset(self, dataset_id: str) -> EvaluationDataset:
        item = self._live_dataset_item(dataset_id)
        if item is None:
            raise MlflowException(
                f"Evaluation dataset with id '{dataset_id}' not found", RESOURCE_DOES_NOT_EXIST
            )
        return dataset_from_item(item)

    def delete_dataset(self, dataset_id: str) -> None:
        update = Update().set("deleted", True).remove("gsi1pk").remove("gsi1sk").exists("pk")
        try:
            item = self.table.update(*eval_dataset_key(dataset_id), update)
        except ConditionFailed:
            return  # no such dataset: MLflow's SQL store only logs it
        self.table.batch_write(
            deletes=[dataset_link_key(e, dataset_id) for e in item.get("experiments") or ()]
        )
        records = self.table.query(
            records_pk(dataset_id), consistent=True, attributes=[("pk",), ("sk",)]
        )
        self.table.batch_write(deletes=[(r["pk"], r["sk"]) for r in records])
        self.table.delete(*eval_dataset_key(dataset_id))

    # ---- search -----------------------------------------------------------------------------

    def search_datasets(
        self,
        experiment_ids: list[str] | None = None,
        filter_string: str | None = None,
        max_results: int = 1000,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[EvaluationDataset]:
        validate_max_results(max_results)
        order_by = [str(o) for o in order_by or []]
        experiments = [str(e) for e in dict.fromkeys(experiment_ids or [])]
        search = [experiments, filter_string, order_by]
        offset = page_offset(page_token, "evaluation_datasets", search)
        clauses = parse_dataset_filter(filter_string)
        key = dataset_sort_key(order_by)
        if experiments:
            candidates = self._datasets_of_experiments(experiments)
        else:
            candidates = self.table.query(EVAL_DATASETS_GSI, index=GSI1)
        found = [i for i in candidates if _is_live(i) and dataset_matches(i, clauses)]
        found.sort(key=key)
        page = found[offset : offset + max_results]
        token = next_page_token("evaluation_datasets", offset, max_results, len(found), search)
        return PagedList([dataset_from_item(i) for i in page], token)

    def _datasets_of_experiments(self, experiments: list[str]) -> list[dict]:
        """The datasets linked to any of `experiments` (entries checked against each set)."""
        ids: dict[str, None] = {}
        for experiment_id in experiments:
            for entry in self.table.query(
                experiment_pk(experiment_id), sk_prefix=DATASET_LINK_SK_PREFIX, consistent=True
            ):
                ids[entry["sk"].removeprefix(DATASET_LINK_SK_PREFIX)] = None
        items = self.table.batch_get(eval_dataset_key(i) for i in ids)
        wanted = set(experiments)
        return [i for i in items if wanted & set(i.get("experiments") or ())]

    # ---- tags ---------------------------------------------------------------------------------

    def set_dataset_tags(self, dataset_id: str, tags: dict[str, Any]) -> None:
        update = Update()
        for key, value in attributed_tags(tags).items():
            if value is not None:
                update.set(("tags", key), str(value))
        if not update:  # nothing to set: the dataset must still exist
            update.set_if_missing("tags", {})
        self._update_live_dataset(
            dataset_id,
            update,
            MlflowException(
                f"Could not find evaluation dataset with ID {dataset_id}",
                error_code=RESOURCE_DOES_NOT_EXIST,
            ),
        )

    def delete_dataset_tag(self, dataset_id: str, key: str) -> None:
        update = Update().remove(("tags", key)).exists("tags")
        with contextlib.suppress(ConditionFailed):  # no dataset: a no-op, as in MLflow's store
            self.table.update(*eval_dataset_key(dataset_id), update)

    # ---- links to experiments ----------------------------------------------------------------

    def get_dataset_experiment_ids(self, dataset_id: str) -> list[str]:
        item = self._live_dataset_item(dataset_id)
        return _experiment_ids(item) if item is not None else []

    def add_dataset_to_experiments(
        self, dataset_id: str, experiment_ids: list[str]
    ) -> EvaluationDataset:
        missing = _dataset_missing(dataset_id)
        if self._live_dataset_item(dataset_id) is None:
            raise missing
        experiments = [str(e) for e in dict.fromkeys(experiment_ids or [])]
        self._require_experiments(experiments, active_only=False)
        update = Update().set("last_update_time", get_current_time_millis())
        if experiments:
            update.add("experiments", set(experiments))
        item = self._update_live_dataset(dataset_id, update, missing)
        now = item["last_update_time"]
        self.table.batch_write(puts=[_link(e, dataset_id, now) for e in experiments])
        return dataset_from_item(item)

    def remove_dataset_from_experiments(
        self, dataset_id: str, experiment_ids: list[str]
    ) -> EvaluationDataset:
        missing = _dataset_missing(dataset_id)
        experiments = [str(e) for e in dict.fromkeys(experiment_ids or [])]
        item = self._live_dataset_item(dataset_id)
        if item is None:
            raise missing
        linked = [e for e in experiments if e in (item.get("experiments") or ())]
        if linked:  # MLflow touches the dataset only when a link goes
            update = Update().set("last_update_time", get_current_time_millis())
            update.delete("experiments", set(linked))
            item = self._update_live_dataset(dataset_id, update, missing)
        self.table.batch_write(deletes=[dataset_link_key(e, dataset_id) for e in experiments])
        return dataset_from_item(item)

    # ---- internals ------------------------------------------------------------------------------

    def _live_dataset_item(self, dataset_id: str) -> dict | None:
        item = self.table.get(*eval_dataset_key(dataset_id))
        return item if _is_live(item) else None

    def _update_live_dataset(self, dataset_id: str, update: Update, missing: Exception) -> dict:
        update.exists("pk").missing("deleted")
        return self.table.update_existing(
            *eval_dataset_key(dataset_id),
            update,
            missing=missing,
            what=f"Evaluation dataset '{dataset_id}'",
        )

    def _require_experiments(self, experiment_ids: list[str], *, active_only: bool = False) -> None:
        """Every id names an experiment (MLflow's message for the first that does not)."""
        if not experiment_ids:
            return
        found = {
            str(i["experiment_id"]): i
            for i in self.table.batch_get(experiment_key(e) for e in experiment_ids)
        }
        for experiment_id in experiment_ids:
            item = found.get(experiment_id)
            if item is None or (active_only and item.get("lifecycle_stage") != "active"):
                raise MlflowException(
                    f"No Experiment with id={experiment_id}", error_code=RESOURCE_DOES_NOT_EXIST
                )


# ---- items ↔ entities ---------------------------------------------------------------------------


def dataset_from_item(item: dict) -> EvaluationDataset:
    dataset = EvaluationDataset(
        dataset_id=item["dataset_id"],
        name=item["name"],
        digest=item["digest"],
        created_time=item["created_time"],
        last_update_time=item["last_update_time"],
        tags=dict(item.get("tags") or {}),
        schema=item.get("schema"),
        profile=dataset_profile(item),
        created_by=item.get("created_by"),
        last_updated_by=item.get("last_updated_by"),
    )
    return dataset


def dataset_profile(item: dict) -> str | None:
    """MLflow's profile column: the record count once there are records; "null" once the last
    record was deleted; nothing before the first record."""
    count = max(int(item.get("num_records") or 0), 0)
    if count:
        return f'{{"num_records": {count}}}'
    return "null" if item.get("emptied") else None


def dataset_digest(name: str, last_update_time: int) -> str:
    """MLflow's digest of a dataset: it changes with every change of its records."""
    return hashlib.sha256(f"{name}:{last_update_time}".encode()).hexdigest()[:8]


def attributed_tags(tags: dict[str, Any]) -> dict[str, Any]:
    """With an authenticated caller, `mlflow.user` can only name that caller."""
    principal = current_principal()
    if principal is None or MLFLOW_USER not in tags:
        return dict(tags)
    return {**tags, MLFLOW_USER: principal.username}


def author_of(tags: dict[str, Any] | None) -> str | None:
    """Who made a change: the authenticated caller, else the `mlflow.user` tag (MLflow's rule)."""
    principal = current_principal()
    if principal is not None:
        return principal.username
    return (tags or {}).get(MLFLOW_USER)


def _experiment_ids(item: dict) -> list[str]:
    return sorted(item.get("experiments") or (), key=lambda e: (len(e), e))


def _is_live(item: dict | None) -> bool:
    return item is not None and not item.get("deleted")


def _dataset_missing(dataset_id: str) -> MlflowException:
    return MlflowException(f"Dataset '{dataset_id}' not found", error_code=RESOURCE_DOES_NOT_EXIST)


def _tag_value(value: Any) -> str | None:
    """A tag value as MLflow's text column keeps it."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    raise MlflowException(
        f"Invalid value {value!r} for a dataset tag: tag values are strings.",
        INVALID_PARAMETER_VALUE,
    )


def _key_attributes(dataset_id: str) -> dict[str, str]:
    pk, sk = eval_dataset_key(dataset_id)
    return {"pk": pk, "sk": sk}


def _link(experiment_id: str, dataset_id: str, now: int) -> dict:
    pk, sk = dataset_link_key(experiment_id, dataset_id)
    return {"pk": pk, "sk": sk, "dataset_id": dataset_id, "created_time": now}
