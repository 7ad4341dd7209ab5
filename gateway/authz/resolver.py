"""Resolution: which experiment or registered model a referenced resource belongs to, and
its role bindings, read from DynamoDB with two caches.

- owners (run, trace, logged model → experiment) never change: cached for the process.
  Run and logged-model ids are the store's own; a trace id is the client's, so the store
  binds it to its experiment for good (every write is conditioned on the experiment, and a
  deleted trace leaves a tombstone with it). An id found nowhere is not cached: it may be
  created a moment later;
- bindings (and experiment names → ids) change: cached for `ttl` seconds, and dropped at
  once when they change through this gateway (`invalidate`).

`lookup(ref)` is what the decision step calls; it only reads the caches filled by
`prefetch(refs)`, which does the DynamoDB reads (in a worker thread: boto3 blocks) for
whatever is not cached. A training loop's `LogMetric` on a known run therefore makes no
DynamoDB read in the gateway once the run is known and its bindings are fresh.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gateway.authz.decide import MISSING
from gateway.authz.entities import Bindings
from gateway.routing.parse import ResourceRef
from store.dynamo import DynamoTable
from store.ownership import Ownership
from store.vocabulary import (
    DATASET,
    EXPERIMENT,
    EXPERIMENT_NAME,
    LOGGED_MODEL,
    REGISTERED_MODEL,
    RUN,
    TRACE,
)

_logger = logging.getLogger(__name__)
# The store's answer to "which experiment owns it", per kind of reference.
_OWNERS: dict[str, Callable[[Ownership, str], str | None]] = {
    RUN: Ownership.experiment_of_run,
    TRACE: Ownership.experiment_of_trace,
    LOGGED_MODEL: Ownership.experiment_of_logged_model,
}
_MAX_ENTRIES = 100_000  # per cache; an overflowing cache is cleared (never grows unbounded)


@dataclass(frozen=True)
class ModelVersionFacts:
    """What the Production guard reads about one model version."""

    version: str
    stage: str
    aliases: tuple[str, ...]
    model_id: str | None = None
    source: str | None = None


class Resolver:
    """Owners and bindings of referenced resources, cached; thread-safe."""

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

    def owner(self, ref: ResourceRef) -> tuple[str, str] | None:
        """(kind, id) of the experiment or model `ref` is decided on, if known."""
        target = self._target_cached(ref)
        return target if isinstance(target, tuple) else None

    # ---- filling the caches --------------------------------------------------------------

    def missing(self, refs: Iterable[ResourceRef]) -> list[ResourceRef]:
        return [r for r in refs if self._needs_read(r)]

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

    def cached_model_version(self, name: str, version: str) -> ModelVersionFacts | None:
        found = self._get_fresh(("version", name, version))
        return None if found is _UNKNOWN else found

    def model_version(self, name: str, version: str) -> ModelVersionFacts | None:
        """Stage, aliases and source of a model version (TTL-cached), None if unknown."""
        key = ("version", name, version)
        found = self._get_fresh(key)
        if found is not _UNKNOWN:
            return found
        facts = self._read_version(name, version)
        self._put_fresh(key, facts)
        return facts

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

    def _read_version(self, name: str, version: str) -> ModelVersionFacts | None:
        if not str(version).isdigit():
            return None
        facts = self.ownership.model_version(name, int(version))
        if facts is None:
            return None
        return ModelVersionFacts(
            str(version), facts.stage, facts.aliases, facts.model_id, facts.source
        )

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


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


_UNKNOWN = _Unknown()
