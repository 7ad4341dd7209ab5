"""Role bindings for the simulator: from a file, or read from the live table.

A bindings file (YAML or JSON) lists experiments and registered models with their
bindings, and the runs, logged models, traces and datasets that live in each experiment
(so that `request` can resolve a run id to its experiment, as the gateway does):

    experiments:
      "7":
        name: churn-training          # optional: for GetExperimentByName
        users: {alice: reader}        # principal id (or a name) -> reader | editor | manager
        groups: {vision: editor}
        private: false
        runs: [run-1]
        logged_models: [m-1]
        traces: [tr-1]
        datasets: [d-1]               # evaluation datasets linked to this experiment
        scorers: [0f4c...]            # scorer ids
        label_schemas: [ls-1]         # label schema ids
        issues: [iss-1]               # issue ids
        review_queues: [rq-1]         # review queue ids
    registered_models:
      churn:
        users: {bob: manager}
        groups: {vision: reader}
        versions:
          "3": {stage: Production, aliases: [champion], source: "runs:/run-1/model"}
          "4": {model_id: m-1}          # registered from a logged model

Anything not listed does not exist (the gateway denies it, or forwards it when MLflow
answers 404 itself, like an unknown experiment name). A dataset listed under several
experiments is linked to each of them (gateway/authz/datasets.py decides on those).
A version's `source` (`runs:/<run>/<path>`) or `model_id` says which files its readers
may load (gateway/authz/model_readers.py): the store keeps a run's files under
`<experiment>/<run>/artifacts/`, and a logged model's in its experiment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.authz.decide import MISSING
from gateway.authz.entities import Bindings
from gateway.authz.model_readers import ArtifactRead
from gateway.routing.parse import ResourceRef
from gateway.simulate.inputs import (
    InputError,
    Location,
    expect_mapping,
    expect_strings,
    located,
    read_document,
)
from store.vocabulary import (
    EXPERIMENT,
    EXPERIMENT_NAME,
    ISSUE,
    LABEL_SCHEMA,
    LOGGED_MODEL,
    REGISTERED_MODEL,
    REVIEW_QUEUE,
    ROLES,
    RUN,
    SCORER,
    TRACE,
)

_CHILDREN = {
    "runs": RUN,
    "logged_models": LOGGED_MODEL,
    "traces": TRACE,
    "scorers": SCORER,
    "label_schemas": LABEL_SCHEMA,
    "issues": ISSUE,
    "review_queues": REVIEW_QUEUE,
}
_RESOLVABLE = {EXPERIMENT, REGISTERED_MODEL, EXPERIMENT_NAME, *_CHILDREN.values()}
_EXPERIMENT_KEYS = {"name", "users", "groups", "private", "datasets", *_CHILDREN}
_MODEL_KEYS = {"users", "groups", "versions"}

Lookup = Callable[[ResourceRef], object]


@dataclass(frozen=True)
class VersionFacts:
    stage: str = "None"
    aliases: tuple[str, ...] = ()
    model_id: str | None = None  # the logged model it was registered from
    source: str | None = None  # e.g. runs:/<run id>/<path>


@dataclass(frozen=True)
class BindingsData:
    """Every experiment's and registered model's bindings, and what lives where."""

    resources: dict[tuple[str, str], Bindings] = field(default_factory=dict)
    children: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    versions: dict[tuple[str, str], VersionFacts] = field(default_factory=dict)
    datasets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # id → experiments

    def lookup(self, ref: ResourceRef) -> Bindings | object | None:
        """The gateway's BindingsLookup contract: Bindings, MISSING, or None (unresolvable)."""
        if ref.kind not in _RESOLVABLE:
            return None  # as gateway/authz/resolver.py: a dataset is decided on its experiments
        key = (ref.kind, ref.id)
        key = self.children.get(key, key)
        return self.resources.get(key, MISSING)

    def version(self, model: str, version: str) -> VersionFacts | None:
        return self.versions.get((model, str(version)))

    def aliases(self, model: str) -> dict[str, str] | None:
        """Alias -> version of a listed model (None: the model is not listed)."""
        if (REGISTERED_MODEL, model) not in self.resources:
            return None
        return {
            alias: version
            for (name, version), facts in self.versions.items()
            if name == model
            for alias in facts.aliases
        }

    def versions_in_stage(self, model: str, stage: str) -> tuple[str, ...] | None:
        if (REGISTERED_MODEL, model) not in self.resources:
            return None
        return tuple(
            v
            for (name, v), facts in self.versions.items()
            if name == model and facts.stage == stage
        )

    def models_registered_from(self, read: ArtifactRead) -> tuple[str, ...]:
        """Models with a listed version registered from the files `read` reads."""
        names = [name for (name, _), facts in self.versions.items() if self._holds(facts, read)]
        return tuple(dict.fromkeys(names))

    def _holds(self, facts: VersionFacts, read: ArtifactRead) -> bool:
        if read.logged_model is not None:
            owner = self.children.get((LOGGED_MODEL, read.logged_model))
            in_place = owner is not None and read.experiment_id in (None, owner[1])
            return in_place and facts.model_id == read.logged_model
        from store.ownership import runs_source  # boto3 only when a run's files are asked about

        source = runs_source(facts.source or "")
        owner = self.children.get((RUN, read.run_id or ""))
        if source is None or source[0] != read.run_id or owner is None or read.path is None:
            return False
        folder = "/".join(p for p in (owner[1], source[0], "artifacts", source[1]) if p)
        return read.path == folder or read.path.startswith(folder + "/")


def load_bindings(path: str | Path) -> BindingsData:
    document = read_document(path)
    return bindings_from_data(document, Location(str(path)))


def bindings_from_data(document: object, where: Location) -> BindingsData:
    """Build BindingsData from a parsed document (also the `bindings:` of a case file)."""
    top = expect_mapping(document, where, "the bindings")
    where = located(top, where)
    unknown = set(top) - {"experiments", "registered_models"}
    if unknown:
        raise InputError(
            where, f"unknown key {sorted(unknown)[0]!r} (expected experiments, registered_models)"
        )
    data = BindingsData()
    experiments = expect_mapping(top.get("experiments"), where, "experiments")
    for exp_id, entry in experiments.items():
        entry = expect_mapping(entry, located(experiments, where), f"experiment {exp_id}")
        here = located(entry, located(experiments, where))
        _refuse_unknown(entry, _EXPERIMENT_KEYS, here)
        bindings = _bindings(EXPERIMENT, str(exp_id), entry, here)
        data.resources[(EXPERIMENT, str(exp_id))] = bindings
        if entry.get("name"):
            data.children[(EXPERIMENT_NAME, str(entry["name"]))] = (EXPERIMENT, str(exp_id))
        for key, kind in _CHILDREN.items():
            for child in expect_strings(entry.get(key), here, key):
                data.children[(kind, child)] = (EXPERIMENT, str(exp_id))
        for dataset in expect_strings(entry.get("datasets"), here, "datasets"):
            data.datasets[dataset] = (*data.datasets.get(dataset, ()), str(exp_id))
    models = expect_mapping(top.get("registered_models"), where, "registered_models")
    for name, entry in models.items():
        entry = expect_mapping(entry, located(models, where), f"registered model {name}")
        here = located(entry, located(models, where))
        _refuse_unknown(entry, _MODEL_KEYS, here)
        if entry.get("private"):
            raise InputError(here, "registered models cannot be private")
        data.resources[(REGISTERED_MODEL, str(name))] = _bindings(
            REGISTERED_MODEL, str(name), entry, here
        )
        versions = expect_mapping(entry.get("versions"), here, "versions")
        for version, facts in versions.items():
            facts = expect_mapping(facts, here, f"version {version}")
            data.versions[(str(name), str(version))] = VersionFacts(
                stage=str(facts.get("stage", "None")),
                aliases=expect_strings(facts.get("aliases"), here, "aliases"),
                model_id=_optional_text(facts.get("model_id")),
                source=_optional_text(facts.get("source")),
            )
    return data


def _optional_text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _refuse_unknown(entry: Mapping, allowed: set[str], where: Location) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise InputError(
            where, f"unknown key {unknown[0]!r} (expected {', '.join(sorted(allowed))})"
        )


def _bindings(kind: str, resource_id: str, entry: Mapping, where: Location) -> Bindings:
    for section in ("users", "groups"):
        for who, role in expect_mapping(entry.get(section), where, section).items():
            if role not in ROLES:
                raise InputError(
                    where, f"{section} {who!r}: unknown role {role!r} (expected {', '.join(ROLES)})"
                )
    return Bindings.from_data(
        kind,
        resource_id,
        {
            "users": {str(k): v for k, v in (entry.get("users") or {}).items()},
            "groups": {str(k): v for k, v in (entry.get("groups") or {}).items()},
            "private": bool(entry.get("private", False)),
        },
    )
