"""Who owns what: the store's answers to the gateway's questions about stored resources.

The gateway decides every request on an experiment or a registered model, so it asks which
experiment a run, trace or logged model belongs to, the role bindings of an experiment or a
model, and the registry facts its policies read (a version's stage and aliases). It asks here,
never by reading items itself: the item layout (`store/keys.py`) is the store's to change.

Read-only and MLflow-free (the gateway never loads MLflow). Every answer is read strongly
consistent, and `reads` counts the DynamoDB requests made (caching is the caller's).

Two answers name the registered models a download may be decided on (a reader of a registered
model may load its versions' files): `logged_model` (versions registered from a logged model)
and `versions_from_run` (versions registered from `runs:/<run_id>/<path>`). Both are checked
against the version items themselves, so an item claiming a version that does not exist, is
deleted, or was registered from something else gains nothing.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from store.bindings import BindingData, bindings_of_item, item_key
from store.dynamo.errors import InvalidValue
from store.dynamo.table import DynamoTable
from store.keys import (
    VERSION_SK_PREFIX,
    eval_dataset_key,
    issue_key,
    label_schema_key,
    logged_model_key,
    name_claim_key,
    registered_model_key,
    review_queue_key,
    run_key,
    run_versions_pk,
    scorer_meta_key,
    trace_key,
    version_key,
    versions_pk,
)

DELETED_STAGE = "Deleted_Internal"  # MLflow's stage of a deleted version (kept as a tombstone)
MODEL_VERSIONS_TAG = "mlflow.modelVersions"  # on a logged model: the versions registered from it
MAX_CLAIMED_VERSIONS = 20  # versions checked per question: each costs reads


@dataclass(frozen=True)
class RegisteredModelFacts:
    """A registered model as the registry holds it now."""

    name: str
    rid: str  # the immutable id its versions are keyed by (a rename keeps it)
    aliases: Mapping[str, int] = field(default_factory=dict)  # alias → version number


@dataclass(frozen=True)
class VersionFacts:
    """What the policies and the model-reader rule read about one model version."""

    name: str
    version: int
    stage: str
    aliases: tuple[str, ...]
    model_id: str | None = None
    source: str | None = None
    storage_location: str | None = None

    @property
    def live(self) -> bool:
        return self.stage != DELETED_STAGE


@dataclass(frozen=True)
class LoggedModelFacts:
    """A logged model's experiment and the registered models its live versions belong to."""

    model_id: str
    experiment_id: str
    registered_as: tuple[str, ...]  # model names, each checked against its version item


@dataclass(frozen=True)
class RunVersion:
    """A live model version registered from `runs:/<run_id>/<path>`."""

    name: str
    version: int
    source: str
    storage_location: str

    @property
    def proxy_path(self) -> str | None:
        """Where the artifact proxy serves the version's files (`<experiment>/<run>/...`),
        None when they are elsewhere (an experiment with its own artifact location)."""
        return artifact_proxy_path(self.storage_location)


class Ownership:
    """Answers about the items of one table; thread-safe."""

    def __init__(self, table: DynamoTable) -> None:
        self.table = table
        self._reads = 0
        self._lock = threading.Lock()

    @property
    def reads(self) -> int:
        """DynamoDB requests made so far (tests and the gateway's metrics count them)."""
        with self._lock:
            return self._reads

    # ---- owners: which experiment a resource belongs to -----------------------------------

    def experiment_of_run(self, run_id: str) -> str | None:
        return self._experiment_of(run_key(run_id))

    def experiment_of_trace(self, trace_id: str) -> str | None:
        """A trace id is bound to its experiment for good (a deleted one leaves a tombstone)."""
        return self._experiment_of(trace_key(trace_id))

    def experiment_of_logged_model(self, model_id: str) -> str | None:
        return self._experiment_of(logged_model_key(model_id))

    def experiment_of_scorer(self, scorer_id: str) -> str | None:
        """A scorer id is bound to its experiment for good (kept when the scorer is deleted)."""
        return self._experiment_of(scorer_meta_key(scorer_id))

    def experiment_of_label_schema(self, schema_id: str) -> str | None:
        """A label schema never moves to another experiment; None once it is deleted."""
        return self._experiment_of(label_schema_key(schema_id))

    def experiment_of_issue(self, issue_id: str) -> str | None:
        """An issue never moves to another experiment (issues are not deleted)."""
        return self._experiment_of(issue_key(issue_id))

    def experiment_of_review_queue(self, queue_id: str) -> str | None:
        """A review queue never moves to another experiment; None once it is deleted."""
        return self._experiment_of(review_queue_key(queue_id))

    def experiment_id_by_name(self, name: str) -> str | None:
        """The experiment that holds `name` (its name claim), None when no one does."""
        return self._experiment_of(name_claim_key(name))

    def dataset_experiments(self, dataset_id: str) -> tuple[str, ...] | None:
        """The experiments an evaluation dataset is linked to; None when there is no such
        dataset (or it is being deleted)."""
        item = self._get(*eval_dataset_key(dataset_id))
        if item is None or item.get("deleted"):
            return None
        return tuple(sorted(item.get("experiments") or (), key=lambda e: (len(e), e)))

    def check_readable(self) -> None:
        """One read; raises what DynamoDB raises when the table cannot be read."""
        self._get(*run_key("-"))

    # ---- role bindings ------------------------------------------------------------------

    def bindings(self, kind: str, resource_id: str) -> BindingData | None:
        """Bindings on an experiment or registered model; None when it does not exist."""
        item = self._get(*item_key(kind, resource_id))
        if item is None or "renamed_from" in item:  # a rename's copy is not the model yet
            return None
        return bindings_of_item(item)

    # ---- registry facts -----------------------------------------------------------------

    def registered_model(self, name: str) -> RegisteredModelFacts | None:
        """The model named `name` (1 GetItem); None when none is, or a rename is under way."""
        item = self._get(*registered_model_key(name))
        if item is None or "renamed_from" in item:
            return None
        aliases = {str(a): int(v) for a, v in (item.get("aliases") or {}).items()}
        return RegisteredModelFacts(str(item["name"]), str(item["rid"]), aliases)

    def model_version(
        self, name: str, version: int, model: RegisteredModelFacts | None = None
    ) -> VersionFacts | None:
        """Version `version` of model `name`, deleted ones included (their stage says so).

        2 GetItem (1 when `model` is given, read before for the same request).
        """
        model = model if model is not None else self.registered_model(name)
        if model is None or version < 0:
            return None
        item = self._get(*version_key(model.rid, version))
        return None if item is None else _version_facts(model, version, item)

    def versions_in_stage(self, model: RegisteredModelFacts, stage: str) -> tuple[str, ...]:
        """Numbers of the model's versions in `stage` (1 Query of its versions)."""
        with self._lock:
            self._reads += 1
        items = self.table.query(
            versions_pk(model.rid), sk_prefix=VERSION_SK_PREFIX, consistent=True
        )
        return tuple(
            str(int(i["sk"].removeprefix(VERSION_SK_PREFIX)))
            for i in items
            if i.get("stage") == stage
        )

    # ---- what a reader of a registered model may download --------------------------------

    def logged_model(self, model_id: str) -> LoggedModelFacts | None:
        """The logged model's experiment and the models it was registered as.

        The logged model names its versions in a tag any editor of its experiment may set;
        only live versions whose item names this logged model count.
        """
        item = self._get(*logged_model_key(model_id))
        if item is None or "experiment_id" not in item:
            return None
        names: list[str] = []
        for name, number in _claimed_versions(item)[:MAX_CLAIMED_VERSIONS]:
            if name in names:
                continue
            facts = self.model_version(name, number)
            if facts is not None and facts.live and facts.model_id == model_id:
                names.append(name)
        return LoggedModelFacts(model_id, str(item["experiment_id"]), tuple(names))

    def versions_from_run(self, run_id: str, under: str | None = None) -> tuple[RunVersion, ...]:
        """Live versions registered from `runs:/<run_id>/...` (1 Query + 2 GetItem each).

        `under`: an artifact-proxy path; only versions whose files hold it are checked and
        returned. Each is checked against its version item: the model still has that id, the
        version is live and its source is this run's.
        """
        with self._lock:
            self._reads += 1
        entries = self.table.query(run_versions_pk(run_id), consistent=True)
        found: list[RunVersion] = []
        models: dict[str, RegisteredModelFacts | None] = {}
        for entry in entries:
            if len(found) >= MAX_CLAIMED_VERSIONS:
                break
            if under is not None and not _holds(entry.get("storage_location"), under):
                continue
            name = str(entry.get("name", ""))
            if name not in models:
                models[name] = self.registered_model(name)
            model = models[name]
            if model is None or model.rid != entry.get("rid"):
                continue  # renamed, deleted, or another model of that name now
            facts = self.model_version(name, int(entry.get("version", -1)), model)
            if facts is None or not facts.live or facts.storage_location is None:
                continue
            parsed = runs_source(facts.source or "")
            if parsed is None or parsed[0] != run_id:
                continue
            if under is not None and not _holds(facts.storage_location, under):
                continue  # the entry's copy of the location is only a hint
            found.append(RunVersion(name, facts.version, str(facts.source), facts.storage_location))
        return tuple(found)

    # ---- internals --------------------------------------------------------------------

    def _experiment_of(self, key: tuple[str, str]) -> str | None:
        item = self._get(*key)
        return str(item["experiment_id"]) if item and "experiment_id" in item else None

    def _get(self, pk: str, sk: str) -> dict | None:
        with self._lock:
            self._reads += 1
        try:
            return self.table.get(pk, sk)
        except InvalidValue:  # a key no item can have (too long for DynamoDB): no such item
            return None


def runs_source(source: str) -> tuple[str, str] | None:
    """(run id, path inside the run's artifacts) of a `runs:/<run_id>/<path>` source, as
    MLflow parses it; None for any other source (another scheme, a host, no run id)."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme != "runs" or parsed.netloc or not parsed.path.startswith("/"):
        return None
    run_id, _, path = parsed.path[1:].partition("/")
    return (run_id, path) if run_id else None


def artifact_proxy_path(uri: str) -> str | None:
    """The path of an `mlflow-artifacts:` URI (what the artifact proxy's routes carry)."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "mlflow-artifacts":
        return None
    path = parsed.path.strip("/")
    segments = path.split("/")
    if not path or any(s in ("", ".", "..") for s in segments):
        return None  # a path that could name something outside the folder: no answer
    return path


def _holds(storage_location: object, path: str) -> bool:
    folder = artifact_proxy_path(str(storage_location or ""))
    return folder is not None and (path == folder or path.startswith(folder + "/"))


def _version_facts(model: RegisteredModelFacts, number: int, item: Mapping) -> VersionFacts:
    return VersionFacts(
        name=model.name,
        version=number,
        stage=str(item.get("stage", "None")),
        aliases=tuple(a for a, v in model.aliases.items() if v == number),
        model_id=item.get("model_id"),
        source=item.get("source"),
        storage_location=item.get("storage_location"),
    )


def _claimed_versions(logged_model_item: Mapping) -> list[tuple[str, int]]:
    """(name, version) pairs the logged model's `mlflow.modelVersions` tag names."""
    try:
        named = json.loads((logged_model_item.get("tags") or {}).get(MODEL_VERSIONS_TAG, "[]"))
    except ValueError:
        return []
    claimed = []
    for entry in named if isinstance(named, list) else []:
        if not isinstance(entry, dict):
            continue
        name, version = str(entry.get("name", "")), str(entry.get("version", ""))
        if name and version.isdigit():
            claimed.append((name, int(version)))
    return claimed
