"""A run's latest metric values, packed in small buckets that grow by linear hashing.

A run has `2^L + s` buckets (`ml = L`, `ms = s` on its core item). Key k lives in bucket
`h(k) mod 2^L`, or `h(k) mod 2^(L+1)` when that is below s (h: the first 8 bytes of
sha256(k)). Each bucket records its level `lvl` (L+1 once split, else L) and holds, per key,
the newest point's order `o` and value `v`, and `hi`, at least the order of every entry it
holds. Logging a metric is one conditional UpdateItem of a bucket of at most about 1 KB, whatever
the run holds.

- **Write** the keys of one bucket (newest point of each): SET m.<k> and hi, on condition that
  the bucket has the expected level and is not frozen, and either
  - `hi` is below the oldest point written: every point is newer than all the bucket holds (a
    training loop logs its keys in step order: its writes need no condition per key), or
  - `hi` is what this process last saw (`hints`) and each key is absent or older (a key logged
    on another scale of steps than its neighbours', or written again out of order).
  A failed condition reads the bucket: frozen → finish its split; other level → the layout
  moved on (help it along, read the core, route again); else write again only the keys still
  newer, key by key, on the `hi` just read. Buckets written before `hi` existed have none: they
  are always written key by key.
- **Split** bucket b from level L to T (T = L+1, or any T from the single bucket of a new run):
  1. freeze it (`frozen = T`, on `lvl = L`), which returns its entries;
  2. put each child `b + j·2^L` (j ≥ 1) with the entries that move there and the bucket's `hi`
     (if absent);
  3. set the bucket's remaining entries and `lvl = T`, unfreeze it (on `frozen = T, lvl = L`);
  4. advance the layout on the core (on `ml = L, ms = s`) once every bucket before is split.
  Every step is idempotent and conditioned, so a writer that meets a frozen bucket, or a bucket
  whose level is ahead of the core, finishes the work of a writer that died. Readers take the
  newest entry of a key across buckets (a key is in two while a split moves it).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, TEMPORARILY_UNAVAILABLE

from store.dynamo.capacity import plain_item_size
from store.dynamo.errors import ConditionFailed
from store.dynamo.expressions import Update
from store.dynamo.table import DynamoTable
from store.tracking.items import MetricPoint
from store.tracking.run_items import bucket_entry
from store.tracking.run_keys import bucket_sk, content_pk, metrics_pk

SPLIT_BYTES = 768  # a write leaving a bucket larger than this splits one (a bucket stays ~1 KB)
KEYS_PER_WRITE = 25  # keys of one UpdateItem (its condition stays far below 4 KB)
MAX_LEVEL = 20
FILL_BYTES = 512  # a wide write grows the run back to buckets of about this size
WRITE_UNIT_BYTES = 1024
ESTIMATE_FROM = 8  # a write of at least this many buckets, and of at least
ESTIMATE_SHARE = 8  # 1/8 of the run's buckets, estimates the size of all of them
BUCKET_BYTES = 150  # a bucket's keys, level and hi (its partition key holds an experiment id)
MAX_SPLITS_PER_CALL = 256
_ATTEMPTS = 40


@dataclass(frozen=True)
class Layout:
    """`2^level + split` buckets: the first `split` of level `level` are split."""

    level: int
    split: int

    @classmethod
    def of(cls, core: dict) -> Layout:
        return cls(int(core.get("ml", 0)), int(core.get("ms", 0)))

    @property
    def count(self) -> int:
        return (1 << self.level) + self.split

    def bucket_of(self, key: str) -> int:
        h = key_hash(key)
        bucket = h % (1 << self.level)
        return h % (1 << (self.level + 1)) if bucket < self.split else bucket

    def level_of(self, bucket: int) -> int:
        split = bucket < self.split or bucket >= 1 << self.level
        return self.level + 1 if split else self.level

    def after(self, last: int, target: int) -> Layout:
        """The layout once buckets split..last of this level are split (to `target`)."""
        if self.level == 0 and self.split == 0:
            return Layout(target, 0)
        if last + 1 < 1 << self.level:
            return Layout(self.level, last + 1)
        return Layout(self.level + 1, 0)


def key_hash(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


NO_ORDER = "0"  # below every metric order (run_keys.metric_order): the `hi` of an empty bucket
_NO_HI = "-"  # the hint for a bucket written before `hi` existed
HINTED_BUCKETS = 4096  # hints kept per run (a run of more buckets keeps those written first)


def empty_bucket(experiment_id: str, position: str, bucket: int, level: int) -> dict:
    return {
        "pk": metrics_pk(experiment_id),
        "sk": bucket_sk(position, bucket),
        "lvl": level,
        "m": {},
        "hi": NO_ORDER,
    }


def written_bucket(
    experiment_id: str, position: str, bucket: int, level: int, points: dict[str, MetricPoint]
) -> dict:
    """A bucket as a write of `points` into an empty one leaves it (`hi` their newest order)."""
    entries = {key: bucket_entry(point) for key, point in points.items()}
    item = {**empty_bucket(experiment_id, position, bucket, level), "m": entries}
    if entries:
        item["hi"] = max(entry["o"] for entry in entries.values())
    return item


@dataclass(frozen=True)
class _Written:
    """A bucket as a write left it."""

    size: int  # bytes, by DynamoDB's rules
    keys: int
    added: bool  # the write brought a key the bucket did not hold
    level: int  # the bucket holds the keys of 1 / 2^level of the hash space


@dataclass(frozen=True)
class _Outcome:
    bucket: int
    entries: dict[str, dict]  # bucket entries (store/tracking/run_items.py)
    written: _Written | None  # the bucket after the write
    stored: dict | None  # the bucket that refused it (None: missing)


def splits_needed(written: list[_Written], count: int) -> int:
    """Splits after a write: one per bucket it grew past SPLIT_BYTES (or found past the 1 KB a
    write unit covers); and when it added keys to a good share of the run's buckets, as many as
    bring the run's entries, estimated from those buckets, back to FILL_BYTES a bucket."""
    over = sum(
        1
        for w in written
        if w.keys > 1 and w.size > SPLIT_BYTES and (w.added or w.size > WRITE_UNIT_BYTES)
    )
    added = any(w.added for w in written)  # values of known keys change no bucket's size
    if not added or len(written) < max(ESTIMATE_FROM, count / ESTIMATE_SHARE):
        return over
    # A bucket of level l holds 1/2^l of the keys: scaled by 2^l, each estimates the whole run.
    entries = sum(max(0, w.size - BUCKET_BYTES) << w.level for w in written) / len(written)
    return max(over, math.ceil(entries / (FILL_BYTES - BUCKET_BYTES)) - count)


class RunBuckets:
    """The metric buckets of one run (thread-safe: it holds no state between calls)."""

    def __init__(
        self,
        table: DynamoTable,
        experiment_id: str,
        position: str,
        run_id: str,
        hints: dict[int, str] | None = None,
    ) -> None:
        self.table = table
        self.experiment_id = experiment_id
        self.position = position
        self.run_id = run_id
        self.hints = {} if hints is None else hints  # bucket → its `hi` as last seen here

    # ---- writing latest values ----------------------------------------------------------

    def write(self, layout: Layout, points: dict[str, MetricPoint]) -> Layout | None:
        """Make each point the latest of its key unless a newer one is stored. Returns the
        layout the write ended with (None: it split buckets, the core holds the new one)."""
        entries = {key: bucket_entry(point) for key, point in points.items()}
        layout = self.grow_for(layout, entries)
        pending, written, read = entries, {}, {}
        for _ in range(_ATTEMPTS):
            outcomes = self.table.fan_out(self._writes(layout, pending, read))
            pending, moved, read = {}, [], {}
            for outcome in outcomes:
                if outcome.written is not None:
                    known = written.get(outcome.bucket)
                    if known is None or outcome.written.size > known.size:
                        written[outcome.bucket] = outcome.written
                    continue
                stored = outcome.stored
                expected = layout.level_of(outcome.bucket)
                if stored is None or "frozen" in stored or stored["lvl"] != expected:
                    moved.append(outcome.bucket)
                    pending.update(outcome.entries)
                else:
                    newer = _newer(outcome.entries, stored.get("m", {}))
                    pending.update(newer)
                    read[outcome.bucket] = stored
            if moved:
                layout = self._help(layout, max(moved))
            if not pending:
                break
        else:
            raise MlflowException(
                f"Run {self.run_id}'s metrics are being changed by too many writers at once; "
                "retry the call.",
                TEMPORARILY_UNAVAILABLE,
            )
        splits = splits_needed(list(written.values()), layout.count)
        if splits:
            self.split(self.layout(), splits)
            return None
        return layout

    def _writes(
        self, layout: Layout, entries: dict[str, dict], read: dict[int, dict]
    ) -> list[Callable]:
        by_bucket: dict[int, dict[str, dict]] = defaultdict(dict)
        for key, entry in entries.items():
            by_bucket[layout.bucket_of(key)][key] = entry
        writes = []
        for bucket, keys in sorted(by_bucket.items()):
            names = sorted(keys)
            for start in range(0, len(names), KEYS_PER_WRITE):
                chunk = {name: keys[name] for name in names[start : start + KEYS_PER_WRITE]}
                level = layout.level_of(bucket)
                writes.append(partial(self._write_bucket, bucket, level, chunk, read.get(bucket)))
        return writes

    def _write_bucket(
        self, bucket: int, level: int, entries: dict[str, dict], read: dict | None = None
    ) -> _Outcome:
        """Write the entries on `hi` alone when they are newer than the bucket's `hi` as last
        seen (or not seen), else key by key on that `hi` (the bucket as last `read`, or the
        hint)."""
        update = Update().equals("lvl", level).missing("frozen")
        top = max(entry["o"] for entry in entries.values())
        oldest = min(entry["o"] for entry in entries.values())
        for key, entry in entries.items():
            update.set(("m", key), entry)
        seen = read if read is not None else _hinted(self.hints.get(bucket))
        if seen is None or seen.get("hi", oldest) < oldest:
            update.require(f"{update.path('hi')} < {update.value(oldest)}").set("hi", top)
        else:
            for key, entry in entries.items():
                update.missing_or_below(("m", key, "o"), entry["o"])
            if "hi" in seen:
                update.equals("hi", seen["hi"]).set("hi", max(seen["hi"], top))
            else:
                update.missing("hi")
        update.returns = "ALL_OLD"  # the bucket before: which keys are new, and its size after
        try:
            before = self.table.update(*self._key(bucket), update)
        except ConditionFailed:
            return _Outcome(bucket, entries, None, self.table.get(*self._key(bucket)))
        stored = before.get("m", {})
        after = {**before, "m": {**stored, **entries}}
        if "hi" in before:
            after["hi"] = max(before["hi"], top)
        self._hint(bucket, after.get("hi", _NO_HI))
        written = _Written(
            plain_item_size(after),
            len(after["m"]),
            entries.keys() - stored.keys() != set(),
            level,
        )
        return _Outcome(bucket, entries, written, None)

    # ---- growing ------------------------------------------------------------------------

    def _hint(self, bucket: int, hi: str) -> None:
        if bucket in self.hints or len(self.hints) < HINTED_BUCKETS:
            self.hints[bucket] = hi

    def layout(self) -> Layout:
        core = self.table.get(content_pk(self.experiment_id), self.position)
        if core is None:
            raise MlflowException(f"Run with id={self.run_id} not found", RESOURCE_DOES_NOT_EXIST)
        return Layout.of(core)

    def grow_for(self, layout: Layout, entries: dict[str, dict]) -> Layout:
        """Grow before writing a wide batch (the first `log_batch` of a deep-learning run) to the
        fewest buckets that hold its entries below SPLIT_BYTES, so that none is written
        oversized."""
        if len(entries) <= layout.count:
            return layout  # a key or two per bucket: a split after the write suffices
        size = plain_item_size({"m": entries})
        wanted = math.ceil(size / (SPLIT_BYTES - BUCKET_BYTES))
        for _ in range(MAX_LEVEL):
            if layout.count >= wanted or layout.level >= MAX_LEVEL:
                return layout
            if layout == Layout(0, 0):
                self._split_range(layout, 0, min(MAX_LEVEL, math.ceil(math.log2(wanted))))
            else:
                self._split_range(layout, (1 << layout.level) - 1, layout.level + 1)
            layout = self.layout()
        return layout

    def split(self, layout: Layout, count: int) -> None:
        """Split the next `count` buckets (linear hashing's order), level after level."""
        count = min(count, MAX_SPLITS_PER_CALL)
        while count > 0 and layout.level < MAX_LEVEL:
            last = min(layout.split + count, 1 << layout.level) - 1
            self._split_range(layout, last, layout.level + 1)
            count -= last + 1 - layout.split
            if count > 0:
                layout = self.layout()

    def _split_range(self, layout: Layout, last: int, target: int) -> None:
        """Split buckets layout.split..last to level `target`, then advance the layout."""
        buckets = range(layout.split, last + 1)
        calls = [partial(self.ensure_split, b, layout.level, target) for b in buckets]
        levels = self.table.fan_out(calls)
        if not all(level is not None and level > layout.level for level in levels):
            return
        after = layout.after(last, levels[-1])
        while layout is not None and not self.advance(layout, after):
            # A concurrent splitter advanced part of the way: go on from where it stopped.
            current = self.layout()
            within = current.level == layout.level and layout.split < current.split <= last
            layout = current if within and layout != Layout(0, 0) else None

    def _help(self, layout: Layout, bucket: int) -> Layout:
        """A write met a bucket frozen, missing or ahead of `layout`. If the core still says
        `layout`, a writer died half-way through splits: finish them up to that bucket. Returns
        the layout to route with now."""
        current = self.layout()
        if current != layout or not layout.split <= bucket < 1 << layout.level:
            return current
        target = layout.level + 1
        if layout == Layout(0, 0):
            stored = self.table.get(*self._key(0))
            target = int(stored.get("frozen", stored["lvl"])) if stored else target
        self._split_range(layout, bucket, max(target, layout.level + 1))
        return self.layout()

    def ensure_split(self, bucket: int, level: int, target: int) -> int | None:
        """Split `bucket` from `level` (steps 1-3) unless done; its level after, None if missing."""
        update = Update().set("frozen", target).equals("lvl", level).missing("frozen")
        try:
            frozen = self.table.update(*self._key(bucket), update)
        except ConditionFailed:
            frozen = self.table.get(*self._key(bucket))
            if frozen is None or int(frozen["lvl"]) > level:
                return None if frozen is None else int(frozen["lvl"])
            if "frozen" not in frozen:
                return int(frozen["lvl"])
        return self.complete(bucket, frozen)

    def complete(self, bucket: int, frozen: dict) -> int:
        """Steps 2 and 3 of the split of a frozen bucket (its content cannot change meanwhile)."""
        level, target = int(frozen["lvl"]), int(frozen["frozen"])
        children: dict[int, dict] = {
            bucket + j * (1 << level): {} for j in range(1, 1 << (target - level))
        }
        kept = {}
        for key, entry in frozen.get("m", {}).items():
            home = key_hash(key) % (1 << target)
            (kept if home == bucket else children[home])[key] = entry
        hi = frozen.get("hi")
        self.table.fan_out(
            [partial(self._put_child, b, target, m, hi) for b, m in children.items()]
        )
        for child in children:  # a child starts with its parent's `hi`
            self._hint(child, hi or _NO_HI)
        update = Update().set("m", kept).set("lvl", target).remove("frozen")
        update.equals("frozen", target).equals("lvl", level)
        with contextlib.suppress(ConditionFailed):  # another writer finished this split
            self.table.update(*self._key(bucket), update)
        return target

    def _put_child(self, bucket: int, level: int, entries: dict, hi: str | None) -> None:
        item = {**empty_bucket(self.experiment_id, self.position, bucket, level), "m": entries}
        if hi is None:
            del item["hi"]  # a bucket from before `hi`: its children are written key by key
        else:
            item["hi"] = hi
        # Absent until now, or made from the same frozen entries and since written to: kept.
        with contextlib.suppress(ConditionFailed):
            self.table.put(item, condition="attribute_not_exists(sk)")

    def advance(self, before: Layout, after: Layout) -> bool:
        """Step 4: the core's layout, from `before` only; False when the core holds another."""
        update = Update().set("ml", after.level).set("ms", after.split)
        update.equals("ml", before.level).equals("ms", before.split)
        try:
            self.table.update(content_pk(self.experiment_id), self.position, update)
        except ConditionFailed:
            return False
        return True

    def _key(self, bucket: int) -> tuple[str, str]:
        return metrics_pk(self.experiment_id), bucket_sk(self.position, bucket)


def _hinted(hi: str | None) -> dict | None:
    if hi is None:
        return None
    return {} if hi == _NO_HI else {"hi": hi}


def _newer(entries: dict[str, dict], stored: dict[str, dict]) -> dict[str, dict]:
    return {
        key: entry
        for key, entry in entries.items()
        if key not in stored or entry["o"] > stored[key]["o"]
    }
