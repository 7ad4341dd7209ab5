"""MLflow's model registry store on DynamoDB (`dynamodb://` registry URIs).

Registered models, versions, stages, aliases, tags and prompts (prompts are registered models
tagged `mlflow.prompt.is_prompt`, as in MLflow's own stores). Every write is atomic on one item
or idempotent and safe to retry; no transactions. Item layout: `store/registry/items.py`.
"""

from __future__ import annotations

import contextlib
import uuid

from mlflow.exceptions import MlflowException
from mlflow.prompt.registry_utils import handle_resource_already_exist_error, has_prompt_tag
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.model_registry import (
    SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT,
    SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD,
    SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT,
    SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD,
)
from mlflow.store.model_registry.abstract_store import AbstractStore
from mlflow.utils.validation import (
    _validate_model_name,
    _validate_model_renaming,
    _validate_registered_model_tag,
    _validate_tag_name,
)

from store.bindings import creation_bindings
from store.dynamo.errors import ConditionFailed, within_item_limit
from store.dynamo.expressions import Update
from store.dynamo.schema import GSI1
from store.dynamo.table import DynamoTable
from store.keys import registered_model_key
from store.registry.core import (
    FEWER_TAGS,
    STALE_RENAME_MS,
    finish_rename,
    model_not_found,
    now_ms,
    run_version_items,
)
from store.registry.items import (
    MODELS_GSI_PK,
    VERSIONS_GSI_PK,
    is_live,
    latest_version_items,
    model_entity,
    new_model_item,
    run_index_prefix,
    version_entity,
)
from store.registry.search import (
    Query,
    Row,
    is_prompt_tagged,
    matches,
    model_query,
    page_of,
    parse_model_filter,
    parse_model_order,
    parse_version_filter,
    parse_version_order,
    sort_rows,
)
from store.registry.versions import VersionsMixin
from store.registry.webhooks import WebhooksMixin
from store.search.pagination import page_offset
from store.unsupported import raise_not_implemented
from store.vocabulary import REGISTERED_MODEL

# Each failed attempt means another writer changed the model: progress, so allow many.
_RENAME_ATTEMPTS = 50
# A version search pinned to at most this many run ids reads only their versions.
_RUN_QUERIES = 25


@raise_not_implemented
class DynamoRegistryStore(VersionsMixin, WebhooksMixin, AbstractStore):
    """Model registry in one DynamoDB table; see store/README.md for items and round trips."""

    def __init__(self, store_uri: str | None = None, tracking_uri: str | None = None) -> None:
        super().__init__(store_uri, tracking_uri)
        self.store_uri = store_uri
        self._table = DynamoTable.from_uri(store_uri)
        self._table.ensure_table()

    @property
    def table(self) -> DynamoTable:
        return self._table

    # -- registered models --

    def create_registered_model(self, name, tags=None, description=None, deployment_job_id=None):
        """1 round trip: a PutItem that fails when the name is taken."""
        _validate_model_name(name)
        tag_dict = {}
        for tag in tags or []:
            _validate_registered_model_tag(tag.key, tag.value)
            tag_dict[tag.key] = tag.value
        now = now_ms()
        item = new_model_item(name, uuid.uuid4().hex, now, description, tag_dict)
        item.update(creation_bindings(REGISTERED_MODEL))  # role bindings, in the same PutItem
        for _ in range(2):
            try:
                with within_item_limit("The registered model", FEWER_TAGS):
                    self._table.put(item, condition="attribute_not_exists(pk)")
                return model_entity(item, [])
            except ConditionFailed:
                existing = self._table.get(*registered_model_key(name))
                if existing is not None and not self._drop_abandoned_rename(existing, now):
                    handle_resource_already_exist_error(
                        name, has_prompt_tag(existing.get("tags", {})), has_prompt_tag(tags)
                    )
        raise _already_exists(name)

    def get_registered_model(self, name):
        """2 round trips: GetItem model + BatchGetItem of its latest versions."""
        model = self._load_model(name)
        return model_entity(model, self._latest(name, model))

    def update_registered_model(self, name, description, deployment_job_id=None):
        """2 round trips: UpdateItem model + BatchGetItem of its latest versions."""
        _validate_model_name(name)
        update = Update().set_or_remove("description", description).set("updated", now_ms())
        model = self._update_model(name, update)
        return model_entity(model, self._latest(name, model))

    def rename_registered_model(self, name, new_name):
        """5 round trips + 1 UpdateItem per version (their last_updated_timestamp moves)."""
        _validate_model_name(name)
        _validate_model_renaming(new_name)
        model = self._find_model(name)
        if model is None:
            return self._finish_interrupted_rename(name, new_name)
        now = now_ms()
        if new_name == name:
            model = self._update_model(name, Update().set("updated", now))
            versions = self._touch_versions(model, now, entries=False)
        else:
            moved = self._move_model(model, new_name, now)
            # The versions and entries under runs before the copy settles: a repeated call
            # finds the unsettled copy and does both again (each write is idempotent).
            versions = self._touch_versions(moved, now, entries=True)
            finished = finish_rename(moved).set("updated", now).add("rev", 1)
            model = self._table.update(*registered_model_key(new_name), finished)
        return model_entity(model, latest_version_items(versions))

    def _finish_interrupted_rename(self, name: str, new_name: str):
        """The same rename repeated after it failed once `name` was gone: finish it."""
        copy = self._table.get(*registered_model_key(new_name))
        if copy is None or copy.get("renamed_from") != name:
            raise model_not_found(name)
        model = self._settle_rename(copy)
        if model is None:
            raise model_not_found(name)
        return model_entity(model, self._latest(new_name, model))

    def _move_model(self, model: dict, new_name: str, now: int) -> dict:
        """Copy the model item to its new name, then delete the old one if it did not change
        in between (its `rev`); the copy stays invisible until the old item is gone."""
        old_name = model["name"]
        for _ in range(_RENAME_ATTEMPTS):
            self._claim_name(model, new_name, now)
            try:
                self._table.delete(
                    *registered_model_key(old_name),
                    condition="rev = :rev AND attribute_not_exists(renamed_from)",
                    values={":rev": model["rev"]},
                )
                break
            except ConditionFailed:
                fresh = self._table.get(*registered_model_key(old_name))
                if fresh is None or fresh.get("rid") != model["rid"]:
                    self._release_claim(new_name, model)
                    raise model_not_found(old_name) from None
                model = fresh
        else:
            self._release_claim(new_name, model)
            raise MlflowException(
                f"Registered Model (name={old_name}) kept changing during the rename; retry.",
                INVALID_PARAMETER_VALUE,
            )
        return {**model, "name": new_name, "renamed_from": old_name}

    def _claim_name(self, model: dict, new_name: str, now: int) -> None:
        pk, sk = registered_model_key(new_name)
        copy = {k: v for k, v in model.items() if k not in ("gsi1pk", "gsi1sk")}
        copy.update(pk=pk, sk=sk, name=new_name, renamed_from=model["name"], rename_started=now)
        for _ in range(2):
            try:
                self._table.put(
                    copy,
                    condition="attribute_not_exists(pk) OR (renamed_from = :old AND rid = :rid)",
                    values={":old": model["name"], ":rid": model["rid"]},
                )
                return
            except ConditionFailed:
                existing = self._table.get(pk, sk)
                if existing is not None and not self._drop_abandoned_rename(existing, now):
                    break
        raise _already_exists(new_name)

    def _release_claim(self, new_name: str, model: dict) -> None:
        # Failing means it was already released, or another rename owns the name now.
        with contextlib.suppress(ConditionFailed):
            self._table.delete(
                *registered_model_key(new_name),
                condition="attribute_exists(renamed_from) AND rid = :rid",
                values={":rid": model["rid"]},
            )

    def _drop_abandoned_rename(self, item: dict, now: int) -> bool:
        """Delete a rename target whose rename stopped long ago; True when the name is free."""
        if "renamed_from" not in item or now - item.get("rename_started", now) < STALE_RENAME_MS:
            return False
        if self._settle_rename(item) is not None:
            return False  # the rename had finished: the name is taken
        self._release_claim(item["name"], item)
        return True

    def delete_registered_model(self, name):
        """3 round trips + 1 BatchWriteItem per 25 versions (model item first: no half model)."""
        for _ in range(2):
            model = self._load_model(name)
            try:
                self._table.delete(
                    *registered_model_key(name),
                    condition="rid = :rid AND attribute_not_exists(renamed_from)",
                    values={":rid": model["rid"]},
                )
                break
            except ConditionFailed:
                continue
        else:
            raise model_not_found(name)
        # Versions whose model item is gone are invisible; removing them is cleanup.
        versions = self._version_items(model["rid"])
        entries = run_version_items(name, versions)
        self._table.batch_write(
            deletes=[(item["pk"], item["sk"]) for item in [*versions, *entries]]
        )

    def set_registered_model_tag(self, name, tag):
        """1 round trip: UpdateItem model."""
        _validate_model_name(name)
        _validate_registered_model_tag(tag.key, tag.value)
        self._update_model(name, Update().set(("tags", tag.key), tag.value))

    def delete_registered_model_tag(self, name, key):
        """1 round trip: UpdateItem model."""
        _validate_model_name(name)
        _validate_tag_name(key)
        self._update_model(name, Update().remove(("tags", key)))

    # -- search --

    def search_registered_models(
        self,
        filter_string=None,
        max_results=SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT,
        order_by=None,
        page_token=None,
    ):
        """Query models + BatchGetItem of the page's latest versions (1 per 100);
        with `name = '...'`: GetItem instead of the Query."""
        _check_at_most(max_results, SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD)
        # Checked in the SQL store's order: syntax, order_by, page token, then the clauses.
        parsed = parse_model_filter(filter_string)
        order = parse_model_order(order_by)
        search = [filter_string, list(order_by or [])]
        offset = page_offset(page_token, "registered_models", search)
        query = model_query(parsed)
        pinned = query.equal_name()
        models = self._models_named(pinned) if pinned is not None else self._all_models()
        rows = [
            Row({"name": m["name"], "last_updated_time": m["updated"]}, m.get("tags", {}), m)
            for m in models
        ]
        if not query.wants_prompts:
            rows = [row for row in rows if not is_prompt_tagged(row.tags)]
        rows = sort_rows([row for row in rows if matches(row, query)], order)
        page, token = page_of(rows, offset, max_results, "registered_models", search)
        latest = self._latest_of([(row.item["name"], row.item) for row in page])
        return PagedList([model_entity(row.item, latest[row.item["rid"]]) for row in page], token)

    def search_model_versions(
        self,
        filter_string=None,
        max_results=SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT,
        order_by=None,
        page_token=None,
    ):
        """Query models + Query versions; `run_id = ` / `IN`: 1 Query per run id instead of
        the versions Query; `name = '...'`: GetItem + Query of that model's versions."""
        if not isinstance(max_results, int) or max_results < 1:
            raise MlflowException(
                "Invalid value for max_results. It must be a positive integer,"
                f" but got {max_results}",
                INVALID_PARAMETER_VALUE,
            )
        _check_at_most(max_results, SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD)
        query = parse_version_filter(filter_string)
        order = parse_version_order(order_by)
        search = [filter_string, list(order_by or [])]
        offset = page_offset(page_token, "model_versions", search)
        models, versions, hidden = self._versions_for(query)
        rows = [
            _version_row(models[v["rid"]]["name"], v)
            for v in versions
            if v["rid"] in models and v["rid"] not in hidden and is_live(v)
        ]
        rows = sort_rows([row for row in rows if matches(row, query)], order)
        page, token = page_of(rows, offset, max_results, "model_versions", search)
        return PagedList([version_entity(row.extra, row.item) for row in page], token)

    def _versions_for(self, query: Query) -> tuple[dict[str, dict], list[dict], set[str]]:
        """Models by rid, the version items the filter may match, and the rids whose versions
        are hidden as prompts (SQL store: one prompt-tagged version hides its model)."""
        pinned, runs = query.equal_name(), query.run_ids(most=_RUN_QUERIES)
        if pinned is not None:
            models = {m["rid"]: m for m in self._models_named(pinned)}
            versions = [v for rid in models for v in self._version_items(rid)]
        else:
            models = {m["rid"]: m for m in self._all_models()}
            if runs is not None:  # only those runs' versions: one index range per run
                found = {
                    (v["pk"], v["sk"]): v  # one version can fall in two ranges ("a", "a#b")
                    for run in runs
                    for v in self._table.query(
                        VERSIONS_GSI_PK, index=GSI1, sk_prefix=run_index_prefix(run)
                    )
                }
                versions = list(found.values())
            else:
                versions = list(self._table.query(VERSIONS_GSI_PK, index=GSI1))
        if query.wants_prompts:
            return models, versions, set()
        hidden = {v["rid"] for v in versions if is_prompt_tagged(v.get("tags", {}))}
        if runs is not None and pinned is None:
            # The other versions of a flagged model decide too: read them.
            for rid in {v["rid"] for v in versions} - hidden:
                if models.get(rid, {}).get("prompt_versions") and any(
                    is_prompt_tagged(v.get("tags", {})) for v in self._version_items(rid)
                ):
                    hidden.add(rid)
        return models, versions, hidden

    def _models_named(self, name: str) -> list[dict]:
        model = self._find_model(name)
        return [model] if model is not None else []

    def _all_models(self) -> list[dict]:
        return list(self._table.query(MODELS_GSI_PK, index=GSI1))


def _version_row(name: str, item: dict) -> Row:
    return Row(
        {
            "name": name,
            "version": int(item["version"]),
            "version_number": int(item["version"]),
            "run_id": item.get("run_id"),
            "source_path": item.get("source"),
            "creation_time": item["created"],
            "last_updated_time": item.get("updated"),
        },
        item.get("tags", {}),
        item,
        extra=name,
    )


def _already_exists(name: str) -> MlflowException:
    return MlflowException(
        f"Registered Model (name={name}) already exists.", RESOURCE_ALREADY_EXISTS
    )


def _check_at_most(max_results: int, threshold: int) -> None:
    if max_results > threshold:
        raise MlflowException(
            "Invalid value for request parameter max_results. It must be at most "
            f"{threshold}, but got value {max_results}",
            INVALID_PARAMETER_VALUE,
        )
