"""Runs this process wrote to lately: active, and the layout of their metric buckets; and
experiments it created runs in lately: active.

A write to a run must refuse a deleted run (as MLflow does) and must know the run's bucket layout
(store/tracking/metric_buckets.py); both are on the run's core item. Reading it first put a
strongly consistent read before every `log_metric`, `log_param`, `set_tag` and `log_batch`: a
second DynamoDB round trip in sequence, and a read unit, on the calls a training loop makes
most. This cache keeps, for `TTL_SECONDS` after a read, that the run was active and its layout:

- **layout**: safe to use stale. Each bucket write is conditioned on the bucket's level, so a
  write routed by an old layout fails its condition, reads the core and routes again; the layout
  the write ends with is remembered. Beside it, each bucket's `hi` as last written here
  (`hints`, kept for the newest HINTED_RUNS runs without expiry: each write's condition checks
  its hint).
- **active**: a run deleted or restored through this process is forgotten at once (as are the
  runs of an experiment it deletes). A run deleted through another process may still take
  writes here for up to `TTL_SECONDS`, as if they had come just before the deletion: the
  writes land in the deleted run, which keeps them if it is restored; `mlflow gc` removes runs
  deleted before its `--older-than`, so it only meets such late writes when run within seconds
  of the deletion.

Experiments likewise: `create_run` reads its experiment (active? where do artifacts go?) once
per `TTL_SECONDS`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Generic, TypeVar

from store.tracking.metric_buckets import Layout

TTL_SECONDS = 2.0
CACHED_RUNS = 10_000  # ~150 bytes each
HINTED_RUNS = 100  # each at most HINTED_BUCKETS hints of ~100 bytes (at most 40 MB)
CACHED_EXPERIMENTS = 1_000  # ~200 bytes each


V = TypeVar("V")


class Recent(Generic[V]):
    """Values read lately, each kept `ttl` seconds after its read, at most `size` (thread-safe)."""

    def __init__(self, ttl: float, size: int, clock=time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._values: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> V | None:
        with self._lock:
            known = self._values.get(key)
            if known is None:
                return None
            if self.clock() - known[0] >= self.ttl:
                del self._values[key]
                return None
            return known[1]

    def put(self, key: str, value: V) -> None:
        """`value` was just read."""
        with self._lock:
            self._values[key] = (self.clock(), value)
            self._values.move_to_end(key)
            while len(self._values) > self.size:
                self._values.popitem(last=False)

    def replace(self, key: str, value: V) -> None:
        """A newer `value` learned without a read: it keeps the time of the read."""
        with self._lock:
            known = self._values.get(key)
            if known is not None:
                self._values[key] = (known[0], value)

    def forget(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)


class RunStates:
    """Layouts of runs known active, each for `ttl` seconds after it was read; and the `hi` of
    the buckets of the runs written lately (hints need no expiry: each write checks its own)."""

    def __init__(self, ttl: float = TTL_SECONDS, size: int = CACHED_RUNS, clock=time.monotonic):
        self.ttl = ttl
        self._layouts: Recent[Layout] = Recent(ttl, size, clock)
        self._hints: OrderedDict[str, dict[int, str]] = OrderedDict()
        self._hints_lock = threading.Lock()

    def layout(self, run_id: str) -> Layout | None:
        """The layout of a run read active less than `ttl` seconds ago; None otherwise."""
        return self._layouts.get(run_id)

    def hints(self, run_id: str) -> dict[int, str]:
        """The `hi` of the run's buckets as last written here (the newest HINTED_RUNS runs)."""
        with self._hints_lock:
            hints = self._hints.pop(run_id, None)
            self._hints[run_id] = {} if hints is None else hints
            while len(self._hints) > HINTED_RUNS:
                self._hints.popitem(last=False)
            return self._hints[run_id]

    def remember(self, run_id: str, layout: Layout) -> None:
        """The run was just read active with this layout."""
        self._layouts.put(run_id, layout)

    def moved_to(self, run_id: str, layout: Layout) -> None:
        """A write found the run's layout grown to `layout`."""
        known = self._layouts.get(run_id)
        if known is not None and _later(layout, known):
            self._layouts.replace(run_id, layout)

    def forget(self, run_id: str) -> None:
        self._layouts.forget(run_id)


def active_experiments(ttl: float = TTL_SECONDS) -> Recent[dict]:
    """Experiments read active lately (a new run needs its experiment active, and its artifact
    location, which never changes): forgotten here when this process deletes or restores one."""
    return Recent(ttl, CACHED_EXPERIMENTS)


def _later(a: Layout, b: Layout) -> bool:
    return (a.level, a.split) > (b.level, b.split)
