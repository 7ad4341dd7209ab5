"""Runs this process wrote to lately: active, and the layout of their metric buckets.

A write to a run must refuse a deleted run (as MLflow does) and must know the run's bucket layout
(store/tracking/metric_buckets.py); both are on the run's core item. Reading it first put a
strongly consistent read before every `log_metric`, `log_param`, `set_tag` and `log_batch`: a
second DynamoDB round trip in sequence, and a read unit, on the calls a training loop makes
most. This cache keeps, for `TTL_SECONDS` after a read, that the run was active and its layout:

- **layout**: safe to use stale. Each bucket write is conditioned on the bucket's level, so a
  write routed by an old layout fails its condition, reads the core and routes again; the layout
  the write ends with is remembered.
- **active**: a run deleted or restored through this process is forgotten at once (as are the
  runs of an experiment it deletes). A run deleted through another process may still take
  writes here for up to `TTL_SECONDS`, as if they had come just before the deletion: the
  writes land in the deleted run, which keeps them if it is restored; `mlflow gc` removes runs
  deleted before its `--older-than`, so it only meets such late writes when run within seconds
  of the deletion.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from store.tracking.metric_buckets import Layout

TTL_SECONDS = 2.0
CACHED_RUNS = 10_000  # ~150 bytes each


class RunStates:
    """Layouts of runs known active, each for `ttl` seconds after it was read (thread-safe)."""

    def __init__(self, ttl: float = TTL_SECONDS, size: int = CACHED_RUNS, clock=time.monotonic):
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._runs: OrderedDict[str, tuple[float, Layout]] = OrderedDict()
        self._lock = threading.Lock()

    def layout(self, run_id: str) -> Layout | None:
        """The layout of a run read active less than `ttl` seconds ago; None otherwise."""
        with self._lock:
            known = self._runs.get(run_id)
            if known is None:
                return None
            read_at, layout = known
            if self.clock() - read_at >= self.ttl:
                del self._runs[run_id]
                return None
            return layout

    def remember(self, run_id: str, layout: Layout) -> None:
        """The run was just read active with this layout."""
        with self._lock:
            self._runs[run_id] = (self.clock(), layout)
            self._runs.move_to_end(run_id)
            while len(self._runs) > self.size:
                self._runs.popitem(last=False)

    def moved_to(self, run_id: str, layout: Layout) -> None:
        """A write found the run's layout grown to `layout` (keeps the time of the read)."""
        with self._lock:
            known = self._runs.get(run_id)
            if known is not None and _later(layout, known[1]):
                self._runs[run_id] = (known[0], layout)

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)


def _later(a: Layout, b: Layout) -> bool:
    return (a.level, a.split) > (b.level, b.split)
