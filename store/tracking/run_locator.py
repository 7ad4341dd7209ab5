"""Run id → where the run's items live (its experiment and position), cached in the process.

The locator item (`RUN#<run_id>` / `RUN`) is written once when the run is created and never
changed, so a location read once stays true: the cache has no expiry, only a size bound. A run
removed by `mlflow gc` elsewhere leaves a stale entry; the core item it leads to is gone, which
every reader and writer checks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from store.dynamo.table import DynamoTable
from store.keys import run_key
from store.tracking.run_keys import content_pk, metrics_pk

CACHED_LOCATIONS = 100_000  # ~200 bytes each


@dataclass(frozen=True)
class RunLocation:
    run_id: str
    experiment_id: str
    position: str
    artifact_uri: str

    @property
    def content_pk(self) -> str:
        return content_pk(self.experiment_id)

    @property
    def metrics_pk(self) -> str:
        return metrics_pk(self.experiment_id)

    @classmethod
    def of(cls, item: dict) -> RunLocation:
        return cls(item["run_id"], item["experiment_id"], item["pos"], item["artifact_uri"])


class Locators:
    """Locations of runs, read from their locator items (eventually consistent first: a miss
    is read again strongly, so a run created a moment ago is found)."""

    def __init__(self, table: DynamoTable, size: int = CACHED_LOCATIONS) -> None:
        self.table = table
        self.size = size
        self._cache: OrderedDict[str, RunLocation] = OrderedDict()
        self._lock = threading.Lock()

    def find(self, run_id: str) -> RunLocation | None:
        with self._lock:
            location = self._cache.get(run_id)
            if location is not None:
                self._cache.move_to_end(run_id)
                return location
        item = self.table.get(*run_key(run_id), consistent=False)
        if item is None:
            item = self.table.get(*run_key(run_id), consistent=True)
        if item is None or "pos" not in item:
            return None
        return self.remember(RunLocation.of(item))

    def find_many(self, run_ids: Iterable[str]) -> dict[str, RunLocation]:
        """Locations of the runs that exist (BatchGetItem for those not cached)."""
        found: dict[str, RunLocation] = {}
        missing = []
        with self._lock:
            for run_id in dict.fromkeys(run_ids):
                if run_id in self._cache:
                    found[run_id] = self._cache[run_id]
                else:
                    missing.append(run_id)
        if missing:
            for item in self.table.batch_get([run_key(r) for r in missing], consistent=True):
                if "pos" in item:
                    found[item["run_id"]] = self.remember(RunLocation.of(item))
        return found

    def remember(self, location: RunLocation) -> RunLocation:
        with self._lock:
            self._cache[location.run_id] = location
            self._cache.move_to_end(location.run_id)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return location

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._cache.pop(run_id, None)
