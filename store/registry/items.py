"""Registry items in the table: their keys, how they are built, and how they become entities.

A registered model is one item keyed by its name (`RMNAME#<name>`): it is the name claim and
holds the model's metadata, tags, aliases and version counter. Its versions live in a partition
keyed by the model's immutable id (`RM#<rid>`), so a rename moves one item, never the versions.
"""

from __future__ import annotations

from collections.abc import Iterable

from mlflow.entities.model_registry import (
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelAlias,
    RegisteredModelTag,
)
from mlflow.entities.model_registry.model_version_stages import STAGE_DELETED_INTERNAL, STAGE_NONE
from mlflow.entities.model_registry.model_version_status import ModelVersionStatus

from store.keys import (
    REGISTERED_MODELS_INDEX_PK,
    registered_model_key,
    run_version_key,
    version_key,
)

MODELS_GSI_PK = REGISTERED_MODELS_INDEX_PK  # every registered model, sorted by name
VERSIONS_GSI_PK = "MVS"  # every model version of every model
READY = ModelVersionStatus.to_string(ModelVersionStatus.READY)


def _without_none(item: dict) -> dict:
    return {k: v for k, v in item.items() if v is not None}


def new_model_item(
    name: str, rid: str, now: int, description: str | None, tags: dict[str, str]
) -> dict:
    pk, sk = registered_model_key(name)
    return _without_none(
        {
            "pk": pk,
            "sk": sk,
            "gsi1pk": MODELS_GSI_PK,
            "gsi1sk": name,
            "name": name,
            "rid": rid,
            "created": now,
            "updated": now,
            "description": description,
            "tags": dict(tags),
            "aliases": {},
            "latest": {},  # stage -> highest live version in it (checked on every read)
            # "prompt_versions": True once a version may carry the prompt tag (never unset)
            "vcount": 0,
            "rev": 0,
        }
    )


def new_version_item(
    rid: str,
    version: int,
    now: int,
    *,
    source: str,
    storage_location: str | None,
    run_id: str | None,
    run_link: str | None,
    description: str | None,
    user_id: str | None,
    model_id: str | None,
    tags: dict[str, str],
) -> dict:
    pk, sk = version_key(rid, version)
    return _without_none(
        {
            "pk": pk,
            "sk": sk,
            "gsi1pk": VERSIONS_GSI_PK,
            "gsi1sk": version_index_key(run_id, rid, version),
            "rid": rid,
            "version": version,
            "created": now,
            "updated": now,
            "description": description,
            "user_id": user_id,
            "stage": STAGE_NONE,
            "source": source,
            "storage_location": storage_location,
            "run_id": run_id,
            "run_link": run_link,
            "status": READY,
            "model_id": model_id,
            "tags": dict(tags),
        }
    )


def version_index_key(run_id: str | None, rid: str, version: int) -> str:
    """Versions sort by run id in the index, so the versions of one run are one key range."""
    return f"{run_id or ''}#{rid}#{version:010d}"


def run_version_item(run_id: str, name: str, version_item: dict) -> dict:
    """The entry naming a version among those registered from `runs:/<run_id>/...`: what lets
    the gateway find them without a scan (store/ownership.py checks it against the version)."""
    rid, version = version_item["rid"], int(version_item["version"])
    pk, sk = run_version_key(run_id, rid, version)
    return {
        "pk": pk,
        "sk": sk,
        "name": name,
        "rid": rid,
        "version": version,
        "storage_location": version_item.get("storage_location"),
    }


def run_index_prefix(run_id: str) -> str:
    return f"{run_id}#"


def is_live(version_item: dict) -> bool:
    return version_item.get("stage") != STAGE_DELETED_INTERNAL


def aliases_for(model_item: dict, version: int) -> list[str]:
    return [alias for alias, v in model_item.get("aliases", {}).items() if int(v) == int(version)]


def version_entity(name: str, item: dict, aliases: Iterable[str] = ()) -> ModelVersion:
    return ModelVersion(
        name=name,
        version=int(item["version"]),
        creation_timestamp=item["created"],
        last_updated_timestamp=item.get("updated"),
        description=item.get("description"),
        user_id=item.get("user_id"),
        current_stage=item.get("stage"),
        source=item.get("source"),
        run_id=item.get("run_id"),
        status=item.get("status", READY),
        status_message=item.get("status_message"),
        tags=[ModelVersionTag(k, v) for k, v in item.get("tags", {}).items()],
        run_link=item.get("run_link"),
        aliases=list(aliases),
        model_id=item.get("model_id"),
    )


def latest_version_items(version_items: Iterable[dict]) -> list[dict]:
    """The highest live version in each stage, stages in order of first appearance."""
    latest: dict[str, dict] = {}
    for item in sorted(version_items, key=lambda i: int(i["version"])):
        stage = item.get("stage")
        if stage != STAGE_DELETED_INTERNAL and (
            stage not in latest or int(latest[stage]["version"]) < int(item["version"])
        ):
            latest[stage] = item
    return list(latest.values())


def latest_summary(model_item: dict, version_items: list[dict], in_flight: bool) -> dict:
    """Stage -> latest live version, from the versions; `in_flight`: a version numbered
    recently but not yet written still counts as the latest in stage None."""
    summary = {i["stage"]: int(i["version"]) for i in latest_version_items(version_items)}
    highest_written = max((int(i["version"]) for i in version_items), default=0)
    if in_flight and int(model_item.get("vcount", 0)) > highest_written:
        summary[STAGE_NONE] = int(model_item["vcount"])
    return summary


def summary_holds(summary: dict, items_by_version: dict[int, dict]) -> bool:
    """Every entry names an existing version that is in that stage."""
    for stage, version in summary.items():
        item = items_by_version.get(int(version))
        if item is None or item.get("stage") != stage:
            return False
    return True


def model_entity(model_item: dict, latest_items: Iterable[dict]) -> RegisteredModel:
    name = model_item["name"]
    return RegisteredModel(
        name=name,
        creation_timestamp=model_item["created"],
        last_updated_timestamp=model_item.get("updated"),
        description=model_item.get("description"),
        latest_versions=[version_entity(name, item) for item in latest_items],
        tags=[RegisteredModelTag(k, v) for k, v in model_item.get("tags", {}).items()],
        aliases=[
            RegisteredModelAlias(alias, int(v))
            for alias, v in model_item.get("aliases", {}).items()
        ],
    )
