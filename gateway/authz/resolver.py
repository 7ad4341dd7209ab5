"""The gateway's facts source (gateway/pipeline.py `Facts`), read through store/ownership.py:
which experiment or registered model a referenced resource belongs to and its role bindings,
the registry's facts the policies read, and the versions registered from a logged model's or a
run's files. Two caches:

- owners (run, trace, logged model, scorer, label schema,
  issue, review queue → experiment) never change: cached
  for the process.
  Run and logged-model ids are the store's own; a trace id is the client's, so the store
  binds it to its experiment for good (every write is conditioned on the experiment, and a
  deleted trace leaves a tombstone with it). An id found nowhere is not cached: it may be
  created a moment later;
- bindings (and experiment names → ids, and the experiments a dataset is linked to) change:
  cached for `ttl` seconds, and dropped at once when they change through this gateway.

`lookup(ref)` is what the decision step calls; it only reads the caches filled by
`prefetch(refs)`, which does the DynamoDB reads (in a worker thread: boto3 blocks) for
whatever is not cached. A training loop's `LogMetric` on a known run therefore makes no
DynamoDB read in the gateway once the run is known and its bindings are fresh. Registry
changes read their facts fresh (authz/registry_facts.py); reads use the cache.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable

from gateway.authz.datasets import CHANGES_LINKS
from gateway.authz.decide import MISSING
from gateway.authz.entities import Bindings
from gateway.authz.model_readers import ArtifactRead
from gateway.authz.registry_facts import (
    TableModelFacts,
    changes_registry,
    registry_context,
    version_number,
)
from gateway.routing.parse import ParsedRequest, ResourceRef
from store.dynamo.errors import InvalidValue, StoreUnavailable
from store.dynamo.table import DynamoTable
from store.ownership import Ownership, VersionFacts
from store.vocabulary import (
    DATASET,
    EXPERIMENT,
    EXPERIMENT_NAME,
    ISSUE,
    LABEL_SCHEMA,
    LOGGED_MODEL,
    REGISTERED_MODEL,
    REVIEW_QUEUE,
    RUN,
    SCORER,
    TRACE,
)

_logger = logging.getLogger(__name__)
# The store's answer to "which experiment owns it", per kind of reference.
_OWNERS: dict[str, Callable[[Ownership, str], str | None]] = {
    RUN: Ownership.experiment_of_run,
    TRACE: Ownership.experiment_of_trace,
    LOGGED_MODEL: Ownership.experiment_of_logged_model,
    SCORER: Ownership.experiment_of_scorer,
    LABEL_SCHEMA: Ownership.experiment_of_label_schema,
    ISSUE: Ownership.experiment_of_issue,
    REVIEW_QUEUE: Ownership.experiment_of_review_queue,
}
_MAX_ENTRIES = 100_000  # per cache; an overflowing cache is cleared (never grows unbounded)
# calls after which cached bindings or names of their resource are stale
_CHANGES_BINDINGS = frozenset(
    {
        "DeleteExperiment",
        "RestoreExperiment",
        "UpdateExperiment",
        "RenameRegisteredModel",
        "DeleteRegisteredModel",
    }
)
_CREATES = frozenset({"CreateExperiment", "CreateRegisteredModel"})


class Resolver:
    """Owners, bindings and registry facts of referenced resources, cached; thread-safe."""

    def __init__(
        self,
        table: DynamoTable,
        *,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.table = table
        self.ownership = Ownership(table)
        self.ttl = ttl
        self.clock = clock
        self._owners: dict[tuple[str, str], str | None] = {}  # (kind, id) → experiment id
        self._fresh: dict[tuple[str, str], tuple[float, object]] = {}  # TTL entries
        self._lock = threading.Lock()

    @property
    def reads(self) -> int:
        """DynamoDB reads made by this resolver (tests and the bench count them)."""
        return self.ownership.reads

    # ---- the decision step's view ------------------------------------------------------

    def lookup(self, ref: ResourceRef) -> Bindings | object | None:
        """Bindings of the experiment/model owning `ref`, MISSING, or None (unknown)."""
        target = self._target_cached(ref)
        if target is _UNKNOWN:
            return None
        if target is MISSING:
            return MISSING
        kind, resource_id = target
        found = self._get_fresh(("bindings", kind, resource_id))
        return None if found is _UNKNOWN else found

    async def prefetch(self, refs: Iterable[ResourceRef]) -> Callable[[ResourceRef], object]:
        """Resolve `refs` and return a lookup answering from what was resolved.

        The answers are kept for this request, so a concurrent invalidation or a TTL expiry
        between resolving and deciding cannot turn a known resource into an unresolved one.
        No thread hop when everything is warm.
        """
        resolved: dict[ResourceRef, object] = {}
        cold = []
        for ref in dict.fromkeys(refs):
            found = None if self._needs_read(ref) else self.lookup(ref)
            if found is None:
                cold.append(ref)
            else:
                resolved[ref] = found
        if cold:
            resolved.update(await asyncio.to_thread(self.load, cold))
        return lambda ref: resolved[ref] if ref in resolved else self.lookup(ref)

    def load(self, refs: Iterable[ResourceRef]) -> dict[ResourceRef, object]:
        """Read what `refs` need; returns each ref's bindings, MISSING or None."""
        resolved: dict[ResourceRef, object] = {}
        for ref in refs:
            try:
                target = self._target(ref)
                if isinstance(target, tuple):
                    resolved[ref] = self._bindings(*target)
                else:
                    resolved[ref] = MISSING if target is MISSING else None
            except StoreUnavailable:
                raise  # the whole call is refused as unavailable, not decided without facts
            except Exception as exc:  # left unresolved: the decision denies it
                _logger.warning("cannot resolve %s %r: %s", ref.kind, ref.id, exc)
                resolved[ref] = None
        return resolved

    def invalidate(self, kind: str, resource_id: str) -> None:
        """Forget cached bindings (after a grant, a revoke, a rename or a delete)."""
        with self._lock:
            self._fresh.pop(("bindings", kind, resource_id), None)
            if kind == EXPERIMENT:
                stale = [
                    k for k, (_, v) in self._fresh.items() if k[0] == "name" and v == resource_id
                ]
                for key in stale:
                    del self._fresh[key]

    def forget_missing(self) -> None:
        """Forget every cached "does not exist" (after a create through this gateway)."""
        with self._lock:
            stale = [k for k, (_, v) in self._fresh.items() if v is MISSING or v is None]
            for key in stale:
                del self._fresh[key]

    async def registry_context(self, parsed: ParsedRequest) -> dict | None:
        """The Cedar context of a registry call: fresh for changes, cached for reads."""
        call = parsed.registry_call
        if call is None:
            return None
        cached = _CachedVersions(self)
        try:
            if changes_registry(parsed.action):  # a cached stage could let a change through
                fresh = TableModelFacts(self.ownership)
                return await asyncio.to_thread(registry_context, parsed, fresh)
            if cached.is_warm(call.name, call.version):  # a loop of reads: no thread hop
                return registry_context(parsed, cached)
            return await asyncio.to_thread(registry_context, parsed, cached)
        except InvalidValue:  # a name no item can have (too long a key): denied on lookup
            return None

    async def dataset_experiments(
        self, dataset_ids: tuple[str, ...]
    ) -> dict[str, tuple[str, ...] | None]:
        """The experiments each dataset is linked to (TTL-cached; None: unknown, denied)."""
        found: dict[str, tuple[str, ...] | None] = {}
        cold = []
        for dataset_id in dataset_ids:
            cached = self._get_fresh(("dataset", dataset_id))
            if cached is _UNKNOWN:
                cold.append(dataset_id)
            else:
                found[dataset_id] = cached
        if cold:
            found.update(await asyncio.to_thread(self._read_datasets, cold))
        return found

    def _read_datasets(self, dataset_ids: list[str]) -> dict[str, tuple[str, ...] | None]:
        found: dict[str, tuple[str, ...] | None] = {}
        for dataset_id in dataset_ids:
            try:
                found[dataset_id] = self.ownership.dataset_experiments(dataset_id)
            except Exception as exc:  # left unresolved: the decision denies it
                _logger.warning("cannot resolve dataset %r: %s", dataset_id, exc)
                found[dataset_id] = None
                continue
            self._put_fresh(("dataset", dataset_id), found[dataset_id])
        return found

    async def models_registered_from(self, read: ArtifactRead) -> tuple[str, ...]:
        """Registered models with a live version whose files `read` reads."""
        try:
            return await asyncio.to_thread(self._models_registered_from, read)
        except StoreUnavailable:
            raise
        except Exception as exc:  # unknown is no: the decision stays a denial
            _logger.warning("cannot read the versions registered from %s: %s", read, exc)
            return ()

    def after_success(self, parsed: ParsedRequest) -> None:
        """Forget what a call that went through has made stale."""
        if parsed.action in _CREATES:
            self.forget_missing()
        elif parsed.action in _CHANGES_BINDINGS:
            for ref in parsed.resources:
                if ref.kind in (EXPERIMENT, REGISTERED_MODEL):
                    self.invalidate(ref.kind, ref.id)
        elif parsed.action in CHANGES_LINKS:
            named = {r.named[1] for r in parsed.resources if r.named and r.named[0] == DATASET}
            with self._lock:
                for dataset_id in named:
                    self._fresh.pop(("dataset", dataset_id), None)

    # ---- internals ------------------------------------------------------------------------

    def _needs_read(self, ref: ResourceRef) -> bool:
        if ref.kind in (EXPERIMENT, REGISTERED_MODEL):
            return self._get_fresh(("bindings", ref.kind, ref.id)) is _UNKNOWN
        target = self._target_cached(ref)
        if target is _UNKNOWN:
            return ref.kind in (*_OWNERS, EXPERIMENT_NAME)
        if isinstance(target, tuple):
            return self._get_fresh(("bindings", *target)) is _UNKNOWN
        return False

    def _target_cached(self, ref: ResourceRef):
        if ref.kind in (EXPERIMENT, REGISTERED_MODEL):
            return (ref.kind, ref.id)
        if ref.kind in _OWNERS:
            with self._lock:
                if (ref.kind, ref.id) in self._owners:
                    owner = self._owners[(ref.kind, ref.id)]
                    return (EXPERIMENT, owner) if owner is not None else MISSING
            return _UNKNOWN
        if ref.kind == EXPERIMENT_NAME:
            found = self._get_fresh(("name", ref.id))
            if found is _UNKNOWN:
                return _UNKNOWN
            return (EXPERIMENT, found) if found is not None else MISSING
        return _UNKNOWN  # datasets and anything else: not resolvable here → denied

    def _target(self, ref: ResourceRef):
        cached = self._target_cached(ref)
        if cached is not _UNKNOWN or ref.kind == DATASET:
            return cached
        if ref.kind in _OWNERS:
            owner = _OWNERS[ref.kind](self.ownership, ref.id)
            if owner is not None:  # an id that does not exist yet may exist later: not kept
                with self._lock:
                    if len(self._owners) > _MAX_ENTRIES:
                        self._owners.clear()
                    self._owners[(ref.kind, ref.id)] = owner
            return (EXPERIMENT, owner) if owner is not None else MISSING
        if ref.kind == EXPERIMENT_NAME:
            owner = self.ownership.experiment_id_by_name(ref.id)
            self._put_fresh(("name", ref.id), owner)
            return (EXPERIMENT, owner) if owner is not None else MISSING
        return _UNKNOWN

    def _bindings(self, kind: str, resource_id: str):
        key = ("bindings", kind, resource_id)
        found = self._get_fresh(key)
        if found is not _UNKNOWN:
            return found
        data = self.ownership.bindings(kind, resource_id)
        if data is None:
            value: object = MISSING
        else:
            value = Bindings.from_data(kind, resource_id, data.as_dict())
        self._put_fresh(key, value)
        return value

    def _models_registered_from(self, read: ArtifactRead) -> tuple[str, ...]:
        if read.logged_model is not None:
            facts = self.ownership.logged_model(read.logged_model)
            if facts is None or read.experiment_id not in (None, facts.experiment_id):
                return ()  # the path's experiment must be the logged model's own
            return facts.registered_as
        if read.run_id is not None and read.path is not None:
            versions = self.ownership.versions_from_run(read.run_id, under=read.path)
            return tuple(dict.fromkeys(v.name for v in versions))
        return ()

    def cached_version(self, name: str, number: int) -> VersionFacts | None | object:
        return self._get_fresh(("version", name, number))

    def version(self, name: str, number: int) -> VersionFacts | None:
        """A model version's facts (TTL-cached), None when there is none."""
        found = self.cached_version(name, number)
        if found is _UNKNOWN:
            found = self.ownership.model_version(name, number)
            self._put_fresh(("version", name, number), found)
        return found

    def _get_fresh(self, key: tuple):
        with self._lock:
            entry = self._fresh.get(key)
        if entry is None or entry[0] < self.clock():
            return _UNKNOWN
        return entry[1]

    def _put_fresh(self, key: tuple, value: object) -> None:
        with self._lock:
            if len(self._fresh) > _MAX_ENTRIES:
                self._fresh.clear()
            self._fresh[key] = (self.clock() + self.ttl, value)


class _CachedVersions:
    """The registry facts a read needs (a version's stage and aliases), from the cache."""

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver

    def is_warm(self, name: str, version: str | None) -> bool:
        number = version_number(version) if version else None
        return number is None or self._resolver.cached_version(name, number) is not _UNKNOWN

    def version(self, name: str, version: str) -> VersionFacts | None:
        number = version_number(version)
        return None if number is None or number < 0 else self._resolver.version(name, number)

    def aliases(self, name: str) -> None:  # never read for a registry read
        return None

    def versions_in_stage(self, name: str, stage: str) -> None:  # never read for a read
        return None


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


_UNKNOWN = _Unknown()
