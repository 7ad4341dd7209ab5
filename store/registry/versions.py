"""Model versions, their stages, tags and the model's aliases."""

from __future__ import annotations

import contextlib
import urllib.parse

from mlflow.entities.model_registry.model_version_stages import (
    ALL_STAGES,
    DEFAULT_STAGES_FOR_GET_LATEST_VERSIONS,
    STAGE_ARCHIVED,
    STAGE_DELETED_INTERNAL,
    STAGE_NONE,
    get_canonical_stage,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository
from mlflow.store.artifact.utils.models import _parse_model_uri
from mlflow.utils.validation import (
    _REGISTERED_MODEL_ALIAS_LATEST,
    _validate_model_alias_name,
    _validate_model_alias_name_reserved,
    _validate_model_name,
    _validate_model_version,
    _validate_model_version_tag,
    _validate_tag_name,
)

from store.dynamo.errors import ConditionFailed, within_item_limit
from store.dynamo.expressions import Update
from store.handler.identity import current_principal
from store.keys import registered_model_key
from store.ownership import runs_source
from store.registry.core import (
    FEWER_TAGS,
    RegistryCore,
    model_not_found,
    now_ms,
    settled_model,
    version_not_found,
)
from store.registry.items import (
    aliases_for,
    is_live,
    new_version_item,
    run_version_item,
    version_entity,
)
from store.registry.search import is_prompt_tagged


class VersionsMixin(RegistryCore):
    """Model-version calls of MLflow's registry `AbstractStore`."""

    def create_model_version(
        self,
        name,
        source,
        run_id=None,
        tags=None,
        run_link=None,
        description=None,
        local_model_path=None,
        model_id=None,
    ):
        """3 round trips: GetItem model, PutItem version (one more per number taken meanwhile),
        UpdateItem model (count it); a `runs:/` source adds the PutItem of its entry under the
        run before each claim, a prompt tag an UpdateItem of the model first."""
        _validate_model_name(name)
        tag_dict = {}
        for tag in tags or []:
            _validate_model_version_tag(tag.key, tag.value)
            tag_dict[tag.key] = tag.value
        storage_location, run_id = self._resolve_source(source, run_id, model_id)
        now = now_ms()
        model = self._load_model(name)
        if is_prompt_tagged(tag_dict) and not model.get("prompt_versions"):
            # Flag the model first: a failure in between leaves a flag, never a hidden tag.
            model = self._update_model(name, Update().set("prompt_versions", True))
        principal = current_principal()
        version = int(model.get("vcount", 0)) + 1
        registered_from = runs_source(source)
        while True:
            # The version item claims its number: a number is taken once and only by a
            # version that exists, so a failure anywhere leaves no gap in the numbers.
            item = new_version_item(
                model["rid"],
                version,
                now,
                source=source,
                storage_location=storage_location,
                run_id=run_id,
                run_link=run_link,
                description=description,
                user_id=principal.username if principal is not None else None,
                model_id=model_id,
                tags=tag_dict,
            )
            if registered_from is not None:
                # Before the version: a version never exists without its entry. An entry left
                # by a failure or a lost number is harmless, as readers check the version's source.
                self._table.put(run_version_item(registered_from[0], model["name"], item))
            try:
                with within_item_limit("The model version", FEWER_TAGS):
                    self._table.put(item, condition="attribute_not_exists(pk)")
                break
            except ConditionFailed:
                version += 1  # taken by a parallel creation
        self._count_version(name, model, item)
        return version_entity(name, item)

    def _count_version(self, name: str, model: dict, item: dict) -> None:
        """Raise the model's counter and its latest version of stage None to a new version,
        never lower them. A model deleted or renamed since it was read loses the version: it
        is removed again and the caller gets RESOURCE_DOES_NOT_EXIST, as if it came after."""
        version = int(item["version"])
        counted = Update().set("updated", now_ms()).set("vcount", version)
        counted.set(("latest", STAGE_NONE), version).equals("rid", model["rid"])
        try:
            self._table.update(
                *registered_model_key(name),
                settled_model(counted.missing_or_below("vcount", version)),
            )
            return
        except ConditionFailed:
            fresh = self._find_model(name)
        if fresh is None or fresh.get("rid") != model["rid"]:
            self._table.delete(item["pk"], item["sk"])
            raise model_not_found(name)
        # A higher number was counted first: the latest of stage None only moves up.
        latest = Update().set(("latest", STAGE_NONE), version).equals("rid", model["rid"])
        with contextlib.suppress(ConditionFailed):
            self._table.update(
                *registered_model_key(name),
                settled_model(latest.missing_or_below(("latest", STAGE_NONE), version)),
            )

    def _resolve_source(self, source, run_id, model_id):
        """Where the artifacts are, and the run that made them (as the SQL store decides).

        A `runs:/<run>/<path>` source is resolved too, to the run's own artifact location: the
        handler tier cannot read artifacts through a `runs:/` URI later (its tracking URI is
        the table, not a server), and readers of the model need no access to the run.
        """
        storage_location = source
        if RunsArtifactRepository.is_runs_uri(source):
            try:
                storage_location = RunsArtifactRepository.get_underlying_uri(source)
            except MlflowException:
                raise
            except Exception as e:
                raise MlflowException(
                    f"Unable to resolve the run artifact location of '{source}': {e}",
                    INVALID_PARAMETER_VALUE,
                ) from e
        elif urllib.parse.urlparse(source).scheme == "models":
            parsed = _parse_model_uri(source)
            try:
                if parsed.model_id is not None:
                    model = _logged_model(parsed.model_id)
                    storage_location = model.artifact_location
                    run_id = run_id or model.source_run_id
                else:
                    storage_location = self.get_model_version_download_uri(
                        parsed.name, parsed.version
                    )
            except Exception as e:
                raise MlflowException(
                    f"Unable to fetch model from model URI source artifact location '{source}'."
                    f"Error: {e}"
                ) from e
        if not run_id and model_id:
            run_id = _logged_model(model_id).source_run_id
        return storage_location, run_id

    def get_model_version(self, name, version):
        """2 round trips: GetItem model + GetItem version."""
        version = _validate_model_version(version)
        model = self._load_model_of_version(name, version)
        item = self._load_version(name, model, version)
        return version_entity(name, item, aliases_for(model, version))

    def update_model_version(self, name, version, description=None):
        """2 round trips: GetItem model + UpdateItem version."""
        version = _validate_model_version(version)
        model = self._load_model_of_version(name, version)
        update = Update().set_or_remove("description", description).set("updated", now_ms())
        item = self._update_version(name, model, version, update)
        return version_entity(name, item, aliases_for(model, version))

    def transition_model_version_stage(self, name, version, stage, archive_existing_versions):
        """5 round trips (+ 1 UpdateItem per version archived): GetItem model, Query versions,
        UpdateItem model (raise the summary), UpdateItem version, UpdateItem model."""
        canonical = get_canonical_stage(stage)
        if archive_existing_versions and canonical not in DEFAULT_STAGES_FOR_GET_LATEST_VERSIONS:
            raise MlflowException(
                "Model version transition cannot archive existing model versions "
                f"because '{stage}' is not an Active stage. Valid stages are "
                f"{DEFAULT_STAGES_FOR_GET_LATEST_VERSIONS}"
            )
        version = _validate_model_version(version)
        model = self._load_model_of_version(name, version)
        items = {int(i["version"]): i for i in self._version_items(model["rid"])}
        if version not in items or not is_live(items[version]):
            raise version_not_found(name, version)
        moves = {version: canonical}
        if archive_existing_versions:
            moves |= {
                v: STAGE_ARCHIVED
                for v, i in items.items()
                if i.get("stage") == canonical and v != version
            }
        now = now_ms()
        model = self._raise_summary(name, model, moves)
        for v, to_stage in sorted(moves.items(), key=lambda m: m[0] == version):
            items[v] = self._set_stage(name, model, v, to_stage, now)
        self._refresh_latest(name, model, list(items.values()), touched=now)
        return version_entity(name, items[version], aliases_for(model, version))

    def _raise_summary(self, name: str, model: dict, moves: dict[int, str]) -> dict:
        """Before versions move, point the summary of each destination stage at the highest
        version moving there when it is higher than what the summary holds."""
        latest = model.get("latest", {})
        raised: dict[str, int] = {}
        for v, to_stage in moves.items():
            if v > max(raised.get(to_stage, 0), int(latest.get(to_stage, 0))):
                raised[to_stage] = v
        if not raised:
            return model
        update = Update()
        for stage, v in raised.items():
            update.set(("latest", stage), v)
        return self._update_model(name, update)

    def _set_stage(self, name, model, version, stage, now):
        update = Update().set("stage", stage).set("updated", now)
        return self._update_version(name, model, version, update)

    def delete_model_version(self, name, version):
        """3 round trips: GetItem model, UpdateItem version, UpdateItem model (aliases);
        + Query and UpdateItem model when it was the latest of its stage."""
        version = _validate_model_version(version)
        model = self._load_model_of_version(name, version)
        now = now_ms()
        # Kept as a redacted tombstone, as the SQL store does, so its number is never reused.
        tombstone = Update().set("stage", STAGE_DELETED_INTERNAL).set("updated", now)
        tombstone.set("source", "REDACTED-SOURCE-PATH").set("run_id", "REDACTED-RUN-ID")
        tombstone.set("run_link", "REDACTED-RUN-LINK")
        for redacted in ("description", "user_id", "status_message"):
            tombstone.remove(redacted)
        self._update_version(name, model, version, tombstone)
        update = Update().set("updated", now)
        for alias in aliases_for(model, version):
            update.remove(("aliases", alias))
        model = self._update_model(name, update)
        if version in {int(v) for v in model.get("latest", {}).values()}:
            self._refresh_latest(name, model)

    def get_model_version_download_uri(self, name, version):
        """2 round trips: GetItem model + GetItem version."""
        version = _validate_model_version(version)
        item = self._load_version(name, self._load_model_of_version(name, version), version)
        return item.get("storage_location") or item.get("source")

    def get_latest_versions(self, name, stages=None):
        """2 round trips: GetItem model + BatchGetItem of its latest versions."""
        model = self._load_model(name)
        latest = self._latest(name, model)
        wanted = {get_canonical_stage(s) for s in (stages or ALL_STAGES)}
        return [
            version_entity(name, item, aliases_for(model, int(item["version"])))
            for item in latest
            if item.get("stage") in wanted
        ]

    # -- tags --

    def set_model_version_tag(self, name, version, tag):
        """2 round trips: GetItem model + UpdateItem version."""
        _validate_model_name(name)
        version = _validate_model_version(version)
        _validate_model_version_tag(tag.key, tag.value)
        model = self._load_model_of_version(name, version)
        if is_prompt_tagged({tag.key: tag.value}):
            # Flag the model first: a crash in between leaves a flag, never a hidden tag.
            self._update_model(name, Update().set("prompt_versions", True))
        self._update_version(name, model, version, Update().set(("tags", tag.key), tag.value))

    def delete_model_version_tag(self, name, version, key):
        """2 round trips: GetItem model + UpdateItem version."""
        _validate_model_name(name)
        version = _validate_model_version(version)
        _validate_tag_name(key)
        model = self._load_model_of_version(name, version)
        self._update_version(name, model, version, Update().remove(("tags", key)))

    # -- aliases --

    def set_registered_model_alias(self, name, alias, version):
        """3 round trips: GetItem model + GetItem version + UpdateItem model."""
        _validate_model_name(name)
        _validate_model_alias_name(alias)
        _validate_model_alias_name_reserved(alias)
        version = _validate_model_version(version)
        model = self._load_model_of_version(name, version)
        self._load_version(name, model, version)
        self._update_model(name, Update().set(("aliases", alias), version))

    def delete_registered_model_alias(self, name, alias):
        """1 round trip: UpdateItem model."""
        _validate_model_name(name)
        _validate_model_alias_name(alias)
        self._update_model(name, Update().remove(("aliases", alias)))

    def get_model_version_by_alias(self, name, alias):
        """2 round trips: GetItem model + GetItem version."""
        _validate_model_name(name)
        _validate_model_alias_name(alias)
        if alias.lower() == _REGISTERED_MODEL_ALIAS_LATEST:
            if versions := self.get_latest_versions(name):
                return max(versions, key=lambda mv: int(mv.version))
            raise MlflowException(
                f"Latest version not found for model {name}.", RESOURCE_DOES_NOT_EXIST
            )
        model = self._load_model(name)
        version = model.get("aliases", {}).get(alias)
        if version is None:
            raise MlflowException(
                f"Registered model alias {alias} not found.", INVALID_PARAMETER_VALUE
            )
        item = self._load_version(name, model, int(version))
        return version_entity(name, item, aliases_for(model, int(version)))

    def _await_model_version_creation(self, mv, await_creation_for):
        """Versions are READY when created: nothing to wait for."""


def _logged_model(model_id: str):
    from mlflow.tracking.client import MlflowClient  # the tracking side, as the SQL store reads it

    return MlflowClient().get_logged_model(model_id)
