"""Facts about a registered model that the registry policies read (the Production guard).

A registry call is decided on its registered model; what it does to the model's versions
comes in the Cedar context (`policies/schema.cedarschema`):

    modelVersion         the version the call names: its stage and aliases
    alias                Set/DeleteRegisteredModelAlias: the alias, and the version it points
                         at now (`target`; absent while the alias is unset)
    transition           TransitionModelVersionStage: the stage asked for, as MLflow spells it,
                         and whether the versions now in that stage are archived
    productionVersions   TransitionModelVersionStage: the versions now in Production

Python only reads these facts; the policies say who may do what with them. A fact that
cannot be read is left out, and the policies treat a missing fact as the worst case.
Calls that change the registry read their facts fresh from the table (a cached stage could
let an editor delete a version promoted a moment ago); reads use the resolver's cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from gateway.authz.decide import model_version_context
from gateway.routing.parse import ParsedRequest

if TYPE_CHECKING:  # boto3 stays out of the simulator's start-up
    from store.ownership import Ownership, RegisteredModelFacts

PRODUCTION = "Production"
_STAGES = {s.lower(): s for s in ("None", "Staging", PRODUCTION, "Archived")}
# Registry calls that change nothing: their facts may come from a cache.
REGISTRY_READS = frozenset(
    {
        "GetRegisteredModel",
        "GetLatestVersions",
        "GetModelVersion",
        "GetModelVersionDownloadUri",
        "GetModelVersionByAlias",
        "GetModelVersionArtifact",
        "GetRegisteredModelPermissions",
    }
)
_ALIAS_CHANGES = frozenset({"SetRegisteredModelAlias", "DeleteRegisteredModelAlias"})
_TRANSITION = "TransitionModelVersionStage"


class VersionLike(Protocol):
    stage: str
    aliases: tuple[str, ...]


class ModelFacts(Protocol):
    """Where the facts come from: the table (gateway, simulator) or a bindings file."""

    def version(self, name: str, version: str) -> VersionLike | None: ...
    def aliases(self, name: str) -> Mapping[str, str] | None: ...
    def versions_in_stage(self, name: str, stage: str) -> tuple[str, ...] | None: ...


def changes_registry(action: str) -> bool:
    return action not in REGISTRY_READS


def canonical_stage(stage: str) -> str:
    """The stage MLflow sets for `stage` (case-insensitive), or `stage` itself if invalid."""
    return _STAGES.get(stage.lower(), stage)


def registry_context(parsed: ParsedRequest, facts: ModelFacts) -> dict | None:
    """The Cedar context of a registry call; None when the call names no model facts."""
    call = parsed.registry_call
    if call is None:
        return None
    context: dict = {}
    number = version_number(call.version) if call.version else None
    if number is not None:
        found = facts.version(call.name, str(number))
        if found is not None:
            context |= model_version_context(str(number), found.stage, found.aliases)
    if not changes_registry(parsed.action):
        return context or None
    if parsed.action in _ALIAS_CHANGES and call.alias:
        alias = _alias_facts(call.name, call.alias, facts)
        if alias is not None:
            context["alias"] = alias
    if parsed.action == _TRANSITION and call.stage is not None:
        context["transition"] = {
            "stage": canonical_stage(call.stage),
            "archiveExistingVersions": call.archive_existing_versions,
        }
        production = facts.versions_in_stage(call.name, PRODUCTION)
        if production is not None:
            context["productionVersions"] = list(production)
    return context or None


def _alias_facts(name: str, alias: str, facts: ModelFacts) -> dict | None:
    aliases = facts.aliases(name)
    if aliases is None:
        return None
    target = aliases.get(alias)
    if target is None:
        return {"name": alias}  # unset now
    found = facts.version(name, target)
    if found is None:
        return None  # points at a version that cannot be read: unknown
    target_facts = model_version_context(target, found.stage, found.aliases)["modelVersion"]
    return {"name": alias, "target": target_facts}


@dataclass(frozen=True)
class StoredVersion:
    """A version's stage and aliases as the table holds them."""

    stage: str
    aliases: tuple[str, ...] = ()


class TableModelFacts:
    """Facts read from the table, fresh (strongly consistent), for one request."""

    def __init__(self, ownership: Ownership):
        self.ownership = ownership
        self._models: dict[str, RegisteredModelFacts | None] = {}

    def version(self, name: str, version: str) -> StoredVersion | None:
        model = self._model(name)
        number = version_number(version)
        if model is None or number is None:
            return None
        found = self.ownership.model_version(name, number, model)
        return None if found is None else StoredVersion(found.stage, found.aliases)

    def aliases(self, name: str) -> dict[str, str] | None:
        model = self._model(name)
        if model is None:
            return None
        return {alias: str(version) for alias, version in model.aliases.items()}

    def versions_in_stage(self, name: str, stage: str) -> tuple[str, ...] | None:
        model = self._model(name)
        if model is None:
            return None
        return self.ownership.versions_in_stage(model, stage)

    def _model(self, name: str) -> RegisteredModelFacts | None:
        if name not in self._models:
            self._models[name] = self.ownership.registered_model(name)
        return self._models[name]


def version_number(version: str) -> int | None:
    """The version number MLflow's handler reads from `version` (it calls `int()`)."""
    try:
        return int(version)
    except (TypeError, ValueError):
        return None
