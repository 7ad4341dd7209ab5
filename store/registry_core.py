"""What every registry call shares: the table, reading a model by name, and MLflow's errors."""

from __future__ import annotations

from mlflow.entities.model_registry.model_version_stages import STAGE_DELETED_INTERNAL
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.validation import _validate_model_name

from store.dynamo import ConditionFailed, DynamoTable
from store.registry_items import (
    MODELS_GSI_PK,
    VERSION_SK_PREFIX,
    is_live,
    model_key,
    version_key,
    versions_pk,
)

# A rename that copied a model but never finished is abandoned after this long.
STALE_RENAME_MS = 60_000
# Conditions every write to a model item carries: it exists and is not a half-done rename target.
MODEL_IS_SETTLED = "attribute_exists(pk) AND attribute_not_exists(renamed_from)"


def now_ms() -> int:
    return get_current_time_millis()


def model_not_found(name: str) -> MlflowException:
    return MlflowException(f"Registered Model with name={name} not found", RESOURCE_DOES_NOT_EXIST)


def version_not_found(name: str, version: int) -> MlflowException:
    return MlflowException(
        f"Model Version (name={name}, version={version}) not found", RESOURCE_DOES_NOT_EXIST
    )


class RegistryCore:
    """The table and the reads that the model and version calls build on."""

    _table: DynamoTable

    # -- models --

    def _load_model(self, name: str) -> dict:
        """The model item for `name` (1 GetItem), or RESOURCE_DOES_NOT_EXIST."""
        _validate_model_name(name)
        item = self._find_model(name)
        if item is None:
            raise model_not_found(name)
        return item

    def _find_model(self, name: str) -> dict | None:
        """The model item for `name` (1 GetItem), or None."""
        item = self._table.get(*model_key(name))
        if item is not None and "renamed_from" in item:
            item = self._settle_rename(item)
        return item

    def _settle_rename(self, item: dict) -> dict | None:
        """A rename target: None while its source still exists, else the finished model."""
        source = self._table.get(*model_key(item["renamed_from"]))
        if source is not None and source.get("rid") == item["rid"]:
            return None
        try:
            return self._table.update(
                *model_key(item["name"]),
                "REMOVE renamed_from, rename_started SET gsi1pk = :g, gsi1sk = :n",
                condition="rid = :rid",
                values={":g": MODELS_GSI_PK, ":n": item["name"], ":rid": item["rid"]},
            )
        except ConditionFailed:
            return None

    def _update_model(
        self,
        name: str,
        expression: str,
        *,
        names: dict | None = None,
        values: dict | None = None,
    ) -> dict:
        """Update a settled model item (its `rev` goes up); RESOURCE_DOES_NOT_EXIST if none."""
        values = {**(values or {}), ":one": 1}
        expression = f"{expression} ADD rev :one"
        for _ in range(2):
            try:
                return self._table.update(
                    *model_key(name),
                    expression,
                    condition=MODEL_IS_SETTLED,
                    names=names,
                    values=values,
                )
            except ConditionFailed:
                self._load_model(name)  # raises when missing; settles a finished rename
        raise model_not_found(name)

    def _version_items(self, rid: str) -> list[dict]:
        """Every version item of one model, deleted ones included (1 Query, paged)."""
        return list(
            self._table.query(versions_pk(rid), sk_prefix=VERSION_SK_PREFIX, consistent=True)
        )

    # -- versions --

    def _load_version(self, name: str, model: dict, version: int) -> dict:
        item = self._table.get(*version_key(model["rid"], version))
        if item is None or not is_live(item):
            raise version_not_found(name, version)
        return item

    def _update_version(
        self,
        name: str,
        model: dict,
        version: int,
        expression: str,
        *,
        names: dict | None = None,
        values: dict | None = None,
    ) -> dict:
        """Update a live version item; RESOURCE_DOES_NOT_EXIST when it is missing or deleted."""
        try:
            return self._table.update(
                *version_key(model["rid"], version),
                expression,
                condition="attribute_exists(pk) AND #stage <> :deleted",
                names={**(names or {}), "#stage": "stage"},
                values={**(values or {}), ":deleted": STAGE_DELETED_INTERNAL},
            )
        except ConditionFailed:
            raise version_not_found(name, version) from None
