"""Reading runs for searches: in run order from an experiment's partitions, one by one, or
whichever of the two is cheaper for a set of positions; and the filter index's columns.

- `in_order` reads an experiment's content and metric partitions together, lazily, in MLflow's
  default run order (or its reverse), and yields whole runs: no request per run.
- `fetch` returns the runs at given positions: it reads the stretch of the partitions between
  the first and the last of them in order while at least a quarter of the runs it passes are
  wanted (a dense page: no request per run), and fetches the others one by one: a Query of each
  run's content (16 in flight), then their metric buckets by key (100 a request).
- `column`, `status_column` read the filter index (gsi2), eventually consistent.

Runs' content items are read with only the attributes a run view needs (`VIEW_FIELDS`), not their
index keys, which repeat each param's and tag's value and position: more than half the bytes of a
wide run's answer. The read units are the same (DynamoDB bills the items before projecting).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial

from store.dynamo.schema import GSI2
from store.dynamo.table import DynamoTable
from store.tracking.metric_buckets import Layout
from store.tracking.run_items import (
    VIEW_FIELDS,
    RunView,
    group_by_position,
    latest_by_position,
    view,
)
from store.tracking.run_keys import (
    ATTRIBUTE,
    RUN_TIMED_PREFIX,
    RUN_UNTIMED_PREFIX,
    STATUS_COLUMN,
    bucket_of,
    bucket_prefix,
    bucket_sk,
    content_pk,
    entry_value,
    filter_pk,
    metrics_pk,
    position_of,
    run_id_of,
    run_position,
    start_time_of,
)

ITEMS_PER_RUN = 8  # the first page's guess of a run's content items (core, params, tags)
BUCKETS_PER_RUN = 1  # and of its metric buckets
_MIN_PAGE = 16
ONE_BY_ONE = 4  # at most this many wanted runs: fetch them one by one
DENSITY = 4  # an in-order read goes on while it passes at most 4 runs per wanted run
_MIN_PASSED = 16
KEYED_BUCKETS = 4  # a run of at most this many buckets has them read by key when fetched
_AFTER_CHILDREN = "$"  # sorts after "<position>#...": the end of a run's items
_VIEWED = [(name,) for name in VIEW_FIELDS]  # the content attributes a run view reads


@dataclass(frozen=True)
class Bounds:
    """A stretch of sort keys (both ends included; None: open)."""

    low: str | None = None
    high: str | None = None

    @classmethod
    def between(cls, first: str, last: str) -> Bounds:
        """From the run at position `first` to the run at `last`, with all their items."""
        return cls(first, last + _AFTER_CHILDREN)

    def sk_range(self) -> tuple[str | None, str | None]:
        return self.low, self.high

    def __and__(self, other: Bounds) -> Bounds:
        lows = [b for b in (self.low, other.low) if b is not None]
        highs = [b for b in (self.high, other.high) if b is not None]
        return Bounds(max(lows, default=None), min(highs, default=None))


def start_time_bounds(clauses) -> Bounds:
    """The positions `attributes.start_time` comparisons leave (the rest are checked on runs):
    a start time s is at `T#<2^63-1-s>`, so s > v is every position before v's."""
    bounds = Bounds()
    for clause in clauses:
        value = clause.value
        if clause.kind != "attribute" or clause.key != "start_time" or type(value) is not int:
            continue
        at = run_position(value, "")[:-1]  # "T#<digits>"
        after = at + _AFTER_CHILDREN
        bounds &= {
            ">": Bounds(RUN_TIMED_PREFIX, at),
            ">=": Bounds(RUN_TIMED_PREFIX, after),
            "<": Bounds(after, RUN_TIMED_PREFIX + "~"),
            "<=": Bounds(at, RUN_TIMED_PREFIX + "~"),
            "=": Bounds(at, after),
        }.get(clause.comparator, Bounds())
    return bounds


# ---- in run order -------------------------------------------------------------------------------


def in_order(
    table: DynamoTable,
    experiment_id: str,
    *,
    ascending: bool = False,
    bounds: Bounds = Bounds(),
    runs: int = 100,
    consistent: bool = True,
) -> Iterator[RunView]:
    """An experiment's runs by start time (descending: MLflow's default order; ascending: the
    reverse, runs without a start time still last), lazily; `runs` sizes the first pages."""
    if not ascending:
        yield from _phase(table, experiment_id, bounds, True, runs, consistent)
        return
    timed = _within(bounds, RUN_TIMED_PREFIX)
    if timed is not None:
        yield from _phase(table, experiment_id, timed, False, runs, consistent)
    untimed = _within(bounds, RUN_UNTIMED_PREFIX)
    if untimed is not None:
        yield from _phase(table, experiment_id, untimed, True, runs, consistent)


def _within(bounds: Bounds, prefix: str) -> Bounds | None:
    within = bounds & Bounds(prefix, prefix + "~")
    return within if within.low <= within.high else None


def _phase(
    table: DynamoTable, experiment_id: str, bounds: Bounds, forward: bool, runs: int, consistent
) -> Iterator[RunView]:
    read = {"sk_range": bounds.sk_range(), "forward": forward, "consistent": consistent}
    items, buckets = _Pacer(runs, ITEMS_PER_RUN), _Pacer(runs, BUCKETS_PER_RUN)
    content = table.query(content_pk(experiment_id), page_size=items, attributes=_VIEWED, **read)
    metrics = table.query(metrics_pk(experiment_id), page_size=buckets, **read)
    latest = _Lockstep(group_by_position(buckets.counted(metrics)), forward)
    for position, group in group_by_position(items.counted(content)):
        items.runs += 1
        buckets.runs += 1
        run = run_of(position, group, latest.at(position))
        if run is not None:
            yield run


class _Pacer:
    """Query page sizes from what the pages so far held: the runs still wanted times the items
    a run took so far (a guess before the first page); past the runs wanted, doubling."""

    def __init__(self, runs: int, per_run: float) -> None:
        self.wanted = runs
        self.per_run = per_run
        self.runs = 0
        self.items = 0
        self.last = 0

    def counted(self, items: Iterator[dict]) -> Iterator[dict]:
        for item in items:
            self.items += 1
            yield item

    def __call__(self) -> int:
        per_run = self.items / self.runs if self.items and self.runs else self.per_run
        left = self.wanted - self.runs + 1  # the run after the last wanted ends its items
        size = math.ceil(left * per_run * 1.25) if left > 1 else self.last * 2
        self.last = max(_MIN_PAGE, size)
        return self.last


class _Lockstep:
    """The buckets of each position, read along with the content in the same direction."""

    def __init__(self, groups: Iterator[tuple[str, list[dict]]], forward: bool) -> None:
        self._groups = groups
        self._forward = forward
        self._next: tuple[str, list[dict]] | None = None
        self._done = False

    def at(self, position: str) -> list[dict]:
        while not self._done:
            if self._next is None:
                self._next = next(self._groups, None)
                if self._next is None:
                    self._done = True
                    break
            found, buckets = self._next
            if found == position:
                self._next = None
                return buckets
            if (found > position) == self._forward:
                break  # a run further on (one without content: ignored)
            self._next = None
        return []


def run_of(position: str, items: list[dict], buckets: list[dict]) -> RunView | None:
    """The run of a position from its items (any order) and buckets; None without a core."""
    ordered = sorted(items, key=_sk)
    if ordered[0]["sk"] != position:
        return None
    latest = latest_by_position(buckets).get(position, {})
    return view(ordered, latest)


# ---- runs at given positions ------------------------------------------------------------------


def fetch(table: DynamoTable, experiment_id: str, positions: Iterable[str]) -> dict[str, RunView]:
    """The runs at `positions` that exist, by position: in order where they are dense, one by
    one where they are not (eventually consistent: the positions come from an index)."""
    wanted = sorted(set(positions))
    found: dict[str, RunView] = {}
    if len(wanted) > ONE_BY_ONE:
        wanted = _read_dense(table, experiment_id, wanted, found)
    if len(wanted) <= 1:
        calls = [partial(one_run, table, experiment_id, position) for position in wanted]
        found.update((run["pos"], run) for run in table.fan_out(calls) if run is not None)
        return found
    pk = content_pk(experiment_id)
    reads = table.fan_out([partial(_items, table, pk, p, False, _VIEWED) for p in wanted])
    contents = dict(zip(wanted, reads, strict=True))
    cores = {p: core for p, items in contents.items() for core in items if core["sk"] == p}
    buckets = _buckets(table, experiment_id, {p: Layout.of(core) for p, core in cores.items()})
    for position in cores:
        found[position] = run_of(position, contents[position], buckets.get(position, []))
    return found


def _buckets(
    table: DynamoTable, experiment_id: str, layouts: dict[str, Layout]
) -> dict[str, list[dict]]:
    """The metric buckets of runs whose cores were read, by position: by key (BatchGetItem, 100
    a request) for runs of at most KEYED_BUCKETS buckets, else by a Query of the run's own. A
    run whose buckets read by key are not all there at the levels its layout gives is read
    again by a Query, which finds every bucket: a split is under way (the core is behind or
    ahead of its buckets), or an eventually consistent read met a copy that lacks a bucket."""
    pk = metrics_pk(experiment_id)
    keyed = {p: layout for p, layout in layouts.items() if layout.count <= KEYED_BUCKETS}
    keys = [(pk, bucket_sk(p, b)) for p, layout in keyed.items() for b in range(layout.count)]
    calls = [partial(table.batch_get, keys, consistent=False)] if keys else []
    queried = [p for p in layouts if p not in keyed]
    calls += [partial(_items, table, pk, bucket_prefix(p), False) for p in queried]
    found: dict[str, list[dict]] = {}
    for items in table.fan_out(calls):
        for item in items:
            found.setdefault(position_of(item["sk"]), []).append(item)
    splitting = [p for p, layout in keyed.items() if not _settled(found.get(p, []), layout)]
    requeried = table.fan_out(
        [partial(_items, table, pk, bucket_prefix(p), False) for p in splitting]
    )
    found.update(zip(splitting, requeried, strict=True))
    return found


def _settled(buckets: list[dict], layout: Layout) -> bool:
    levels = {bucket_of(bucket["sk"]): int(bucket["lvl"]) for bucket in buckets}
    expected = {number: layout.level_of(number) for number in range(layout.count)}
    return levels == expected


def _read_dense(
    table: DynamoTable, experiment_id: str, wanted: list[str], found: dict[str, RunView]
) -> list[str]:
    """Read from the first wanted position on, in order, while the wanted runs are dense;
    what is left to fetch one by one."""
    remaining = set(wanted)
    passed, last = 0, ""
    runs = in_order(
        table,
        experiment_id,
        bounds=Bounds.between(wanted[0], wanted[-1]),
        runs=len(wanted),
        consistent=False,
    )
    for run in runs:
        passed, last = passed + 1, run["pos"]
        if last in remaining:
            remaining.discard(last)
            found[last] = run
        if passed >= _MIN_PASSED and passed > DENSITY * len(found):
            return sorted(p for p in remaining if p > last)  # sparse: the rest one by one
    return []  # read to the last one: the others do not exist


def one_run(
    table: DynamoTable, experiment_id: str, position: str, consistent: bool = False
) -> RunView | None:
    """One run: a Query of its content and one of its buckets, together."""
    content, buckets = table.fan_out(
        [
            partial(_items, table, content_pk(experiment_id), position, consistent, _VIEWED),
            partial(_items, table, metrics_pk(experiment_id), bucket_prefix(position), consistent),
        ]
    )
    return run_of(position, content, buckets) if content else None


def _items(
    table: DynamoTable,
    pk: str,
    prefix: str,
    consistent: bool,
    attributes: list[tuple[str]] | None = None,
) -> list[dict]:
    return list(table.query(pk, sk_prefix=prefix, consistent=consistent, attributes=attributes))


# ---- the filter index -------------------------------------------------------------------------


def column(
    table: DynamoTable,
    experiment_id: str,
    kind: str,
    key: str,
    *,
    prefix: str | None = None,
    forward: bool = True,
    page_size: int | None = None,
) -> Iterator[dict]:
    """Entries of one column (a param or tag key, or an attribute column), by value then
    position; `prefix`: only values starting with it."""
    return table.query(
        filter_pk(experiment_id, kind, key),
        index=GSI2,
        sk_prefix=prefix,
        forward=forward,
        page_size=page_size,
    )


def status_column(table: DynamoTable, experiment_id: str) -> list[dict]:
    """Every run of the experiment as its status entry says: a partial RunView with the
    attributes searches read (status, lifecycle stage, start and end time, user, id)."""
    runs = []
    for entry in column(table, experiment_id, ATTRIBUTE, STATUS_COLUMN):
        position = position_of(entry["sk"])
        runs.append(
            {
                "pos": position,
                "run_id": run_id_of(position),
                "experiment_id": experiment_id,
                "start_time": start_time_of(position),
                "status": entry_value(entry)[0],
                "lifecycle_stage": entry.get("lifecycle_stage"),
                "end_time": entry.get("end_time"),
                "user_id": entry.get("user_id"),
                "params": {},
                "tags": {},
                "metrics": {},
            }
        )
    return runs


def _sk(item: dict) -> str:
    return item["sk"]
