"""What every registry call shares: the table, reading a model by name, and MLflow's errors."""

from __future__ import annotations

from mlflow.entities.model_registry.model_version_stages import STAGE_DELETED_INTERNAL
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.validation import _validate_model_name

from store.dynamo.errors import ConditionFailed, within_item_limit
from store.dynamo.expressions import Update
from store.dynamo.table import DynamoTable
from store.keys import VERSION_SK_PREFIX, registered_model_key, version_key, versions_pk
from store.ownership import runs_source
from store.registry.items import (
    MODELS_GSI_PK,
    is_live,
    latest_summary,
    latest_version_items,
    run_version_item,
    summary_holds,
)

# A rename or a version write that started this long ago and never finished is abandoned.
STALE_RENAME_MS = 60_000
_SUMMARY_ATTEMPTS = 5
FEWER_TAGS = "Use fewer or shorter tags."


def now_ms() -> int:
    return get_current_time_millis()


def model_not_found(name: str) -> MlflowException:
    return MlflowException(f"Registered Model with name={name} not found", RESOURCE_DOES_NOT_EXIST)


def version_not_found(name: str, version: int) -> MlflowException:
    return MlflowException(
        f"Model Version (name={name}, version={version}) not found", RESOURCE_DOES_NOT_EXIST
    )


def settled_model(update: Update) -> Update:
    """What every write to a model item requires: it exists and is not a half-done rename's
    copy (a rename deletes the old item only if `rev` did not move, so every write raises it)."""
    return update.add("rev", 1).exists("pk").missing("renamed_from")


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

    def _load_model_of_version(self, name: str, version: int) -> dict:
        """`_load_model` for a call on one version: a missing model is MLflow's missing version."""
        _validate_model_name(name)
        item = self._find_model(name)
        if item is None:
            raise version_not_found(name, version)
        return item

    def _find_model(self, name: str) -> dict | None:
        """The model item for `name` (1 GetItem), or None."""
        item = self._table.get(*registered_model_key(name))
        if item is not None and "renamed_from" in item:
            item = self._settle_rename(item)
        return item

    def _settle_rename(self, item: dict) -> dict | None:
        """A rename target: None while its source still exists, else the finished model
        (its versions touched and their entries under runs renamed first, as the rename does)."""
        source = self._table.get(*registered_model_key(item["renamed_from"]))
        if source is not None and source.get("rid") == item["rid"]:
            return None
        self._touch_versions(item, get_current_time_millis(), entries=True)
        try:
            return self._table.update(*registered_model_key(item["name"]), finish_rename(item))
        except ConditionFailed:
            return None

    def _update_model(self, name: str, update: Update) -> dict:
        """Update a settled model item (its `rev` goes up); RESOURCE_DOES_NOT_EXIST if none."""
        settled_model(update)
        for _ in range(2):
            try:
                with within_item_limit("The registered model", FEWER_TAGS):
                    return self._table.update(*registered_model_key(name), update)
            except ConditionFailed:
                self._load_model(name)  # raises when missing; settles a finished rename
        raise model_not_found(name)

    def _touch_versions(self, model: dict, now: int, *, entries: bool) -> list[dict]:
        """Set every version's `last_updated_timestamp` (as the SQL store does on a rename) and,
        with `entries`, write the entries under runs again with the model's name."""
        versions = []
        for item in self._version_items(model["rid"]):
            try:
                touched = Update().set("updated", now).exists("pk")
                versions.append(self._table.update(item["pk"], item["sk"], touched))
            except ConditionFailed:
                continue  # deleted with its model meanwhile
        if entries:
            self._table.batch_write(puts=run_version_items(model["name"], versions))
        return versions

    # -- the latest-version summary on the model item --

    def _latest(self, name: str, model: dict) -> list[dict]:
        """The latest live version item of each stage: 1 BatchGetItem of the versions the
        model's summary names; a summary that does not hold is rebuilt from a Query."""
        return self._latest_of([(name, model)])[model["rid"]]

    def _latest_of(self, models: list[tuple[str, dict]]) -> dict[str, list[dict]]:
        """`_latest` for many models with one BatchGetItem per 100 versions.

        Each model's next number is read too: a version there exists but was not counted (its
        creation failed after writing it), so the summary misses it and is rebuilt.
        """
        keys = [
            version_key(model["rid"], int(v))
            for _, model in models
            for v in {*model.get("latest", {}).values(), int(model.get("vcount", 0)) + 1}
        ]
        found: dict[str, dict[int, dict]] = {}
        for item in self._table.batch_get(keys):
            found.setdefault(item["rid"], {})[int(item["version"])] = item
        result = {}
        for name, model in models:
            items = found.get(model["rid"], {})
            uncounted = int(model.get("vcount", 0)) + 1 in items
            if not uncounted and summary_holds(model.get("latest", {}), items):
                result[model["rid"]] = sorted(items.values(), key=lambda i: int(i["version"]))
            else:
                result[model["rid"]] = self._refresh_latest(name, model)
        return result

    def _refresh_latest(
        self,
        name: str,
        model: dict,
        items: list[dict] | None = None,
        *,
        touched: int | None = None,
    ) -> list[dict]:
        """Rebuild the summary from the versions (`items`, or a Query made now) and store it
        unless the model changed since `model` was read (then read both again).

        Writers change version items first and this summary last, raising the summary of a
        destination stage beforehand; a writer that dies in between leaves a summary naming
        a version that is not in that stage, which the next read notices and rebuilds.
        """
        latest = latest_version_items(items or [])
        for _ in range(_SUMMARY_ATTEMPTS):
            if items is None:
                items = self._version_items(model["rid"])
            latest = latest_version_items(items)
            now = now_ms()
            in_flight = now - int(model.get("updated", 0)) < STALE_RENAME_MS
            update = Update().set("latest", latest_summary(model, items, in_flight))
            written = max((int(i["version"]) for i in items), default=0)
            if written > int(model.get("vcount", 0)):  # a version whose creation failed late
                update.set("vcount", written)
            if touched is not None:
                update.set("updated", touched)
            update.equals("rev", model["rev"]).equals("rid", model["rid"])
            try:
                self._table.update(*registered_model_key(name), settled_model(update))
                return latest
            except ConditionFailed:
                fresh = self._table.get(*registered_model_key(name))
                if fresh is None or fresh.get("rid") != model["rid"] or "renamed_from" in fresh:
                    return latest  # deleted or being renamed: the next reader rebuilds it
                model, items = fresh, None
        return latest

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

    def _update_version(self, name: str, model: dict, version: int, update: Update) -> dict:
        """Update a live version item; RESOURCE_DOES_NOT_EXIST when it is missing or deleted."""
        return self._table.update_existing(
            *version_key(model["rid"], version),
            update.exists("pk").differs("stage", STAGE_DELETED_INTERNAL),
            missing=version_not_found(name, version),
            what="The model version",
            advice=FEWER_TAGS,
        )


def run_version_items(name: str, version_items: list[dict]) -> list[dict]:
    """The entries under runs of the live versions registered from `runs:/` sources."""
    entries = []
    for item in version_items:
        registered_from = runs_source(str(item.get("source", "")))
        if registered_from is not None and is_live(item):
            entries.append(run_version_item(registered_from[0], name, item))
    return entries


def finish_rename(model_item: dict) -> Update:
    """The last step of a rename on the new item: it shows in searches and takes writes."""
    update = Update().remove("renamed_from").remove("rename_started")
    update.set("gsi1pk", MODELS_GSI_PK).set("gsi1sk", model_item["name"])
    return update.equals("rid", model_item["rid"])
