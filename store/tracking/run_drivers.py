"""Which runs of an experiment a search has to look at: the candidates a filter clause finds in
the filter index, the locators or the metric buckets, in run order (store/README.md, "Search").

A driver only narrows: every candidate is checked against the whole filter on the run itself,
so an index entry that is stale, truncated or names a deleted run never changes an answer.
Clauses, first match wins:

1. `attributes.run_id =` / `IN`: the locators of those runs;
2. `=` / `IN` on a param, a tag, `run_name` (the `mlflow.runName` tag) or `status`: the
   entries of that value in the key's index column, already in run order;
3. `LIKE 'prefix…'` on those: the entries that start with the prefix;
4. `ILIKE`, another `LIKE`, `IS NOT NULL` on those: the key's whole column, compared on the
   indexed values;
5. a metric clause: the experiment's metric buckets, read in run order;
6. none of those: no driver (the search reads the runs themselves in order).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

from store.search.compare import Clause, compare
from store.tracking.run_items import group_by_position, latest_attribute, latest_by_position
from store.tracking.run_keys import (
    ATTRIBUTE,
    PARAM,
    RUN_TIMED_PREFIX,
    RUN_UNTIMED_PREFIX,
    STATUS_COLUMN,
    TAG,
    entry_value,
    equal_value_prefix,
    index_prefix,
    metrics_pk,
    position_of,
)
from store.tracking.run_locator import Locators
from store.tracking.run_query import RunQuery
from store.tracking.run_reader import column

EQUALITY = "equality"
PREFIX = "prefix"
SCAN = "scan"
METRICS = "metrics"
RUN_IDS = "run_ids"
_SCANNED = ("ILIKE", "LIKE", "IS NOT NULL")


@dataclass(frozen=True)
class Driver:
    """How a search finds its candidates in one experiment (kind: one of the constants)."""

    kind: str
    clause: Clause | None = None
    column: tuple[str, str] | None = None  # (P / T / A, key) of the filter-index column


def choose_driver(query: RunQuery) -> Driver | None:
    """The cheapest way to the candidates of `query`, None for reading the runs in order."""
    clauses = query.clauses
    for clause in clauses:
        if (
            clause.kind == "attribute"
            and clause.key == "run_id"
            and clause.comparator in ("=", "IN")
        ):
            return Driver(RUN_IDS, clause)
    indexed = [(c, column_of(c)) for c in clauses]
    indexed = [(c, col) for c, col in indexed if col is not None]
    for clause, col in indexed:
        if clause.comparator in ("=", "IN"):
            return Driver(EQUALITY, clause, col)
    for clause, col in indexed:
        if clause.comparator == "LIKE" and like_prefix(clause.value) and col[0] != ATTRIBUTE:
            return Driver(PREFIX, clause, col)
    for clause, col in indexed:
        if clause.comparator in _SCANNED and col[0] != ATTRIBUTE:
            return Driver(SCAN, clause, col)
    if any(c.kind == "metric" for c in clauses):
        return Driver(METRICS)
    return None


def column_of(clause: Clause) -> tuple[str, str] | None:
    """The filter-index column a clause reads, None when it reads none."""
    if clause.kind == "parameter":
        return PARAM, clause.key
    if clause.kind == "tag":
        return TAG, clause.key
    if clause.kind == "attribute" and clause.key == "run_name":
        return TAG, MLFLOW_RUN_NAME
    if clause.kind == "attribute" and clause.key == "status":
        return ATTRIBUTE, STATUS_COLUMN
    return None


def like_prefix(pattern) -> str:
    """The literal start of a LIKE pattern (before its first wildcard)."""
    text = str(pattern)
    cut = min((i for i in (text.find("%"), text.find("_")) if i >= 0), default=len(text))
    return text[:cut]


class Candidates:
    """Candidate positions of one experiment for a driver, in start-time order."""

    def __init__(self, table, experiment_id: str, locators: Locators, query: RunQuery) -> None:
        self.table = table
        self.experiment_id = experiment_id
        self.locators = locators
        self.query = query

    def positions(self, driver: Driver, ascending: bool, runs: int) -> Iterator[str]:
        """Lazily where the index gives run order (equality, metrics), else all at once;
        `runs` sizes the first index pages."""
        if driver.kind == EQUALITY:
            return self._equal(driver, ascending, runs)
        if driver.kind == METRICS:
            return self._by_metrics(ascending, runs)
        found = {
            RUN_IDS: lambda: self._run_ids(driver.clause),
            PREFIX: lambda: self._prefixed(driver),
            SCAN: lambda: self._scanned(driver),
        }[driver.kind]()
        return iter(self._sorted(found, ascending))

    def all(self, driver: Driver) -> list[str]:
        """Every candidate (any order)."""
        return list(self.positions(driver, False, 1000))

    # ---- each driver ------------------------------------------------------------------------

    def _run_ids(self, clause: Clause) -> list[str]:
        ids = [clause.value] if clause.comparator == "=" else list(clause.value)
        found = self.locators.find_many(str(i) for i in ids)
        return [loc.position for loc in found.values() if loc.experiment_id == self.experiment_id]

    def _equal(self, driver: Driver, ascending: bool, runs: int) -> Iterator[str]:
        clause = driver.clause
        values = [clause.value] if clause.comparator == "=" else list(clause.value)
        streams = []
        for value in dict.fromkeys(str(v) for v in values):
            prefix = equal_value_prefix(value)
            if not ascending:
                streams.append(self._entries(driver, prefix, True, runs))
                continue
            timed = self._entries(driver, prefix + RUN_TIMED_PREFIX, False, runs)
            untimed = self._entries(driver, prefix + RUN_UNTIMED_PREFIX, True, runs)
            streams.append(_chained(timed, untimed))
        if not ascending:
            return heapq.merge(*streams)  # positions ascend in MLflow's default order
        return heapq.merge(*streams, key=_ascending_start)

    def _entries(self, driver: Driver, prefix: str, forward: bool, runs: int) -> Iterator[str]:
        kind, key = driver.column
        entries = column(
            self.table,
            self.experiment_id,
            kind,
            key,
            prefix=prefix,
            forward=forward,
            page_size=runs,
        )
        return (position_of(entry["sk"]) for entry in entries)

    def _prefixed(self, driver: Driver) -> list[str]:
        kind, key = driver.column
        prefix = index_prefix(like_prefix(driver.clause.value))
        entries = column(self.table, self.experiment_id, kind, key, prefix=prefix)
        return [position_of(entry["sk"]) for entry in entries]

    def _scanned(self, driver: Driver) -> list[str]:
        kind, key = driver.column
        clause = driver.clause
        found = []
        for entry in column(self.table, self.experiment_id, kind, key):
            value, complete = entry_value(entry)
            if (
                clause.comparator == "IS NOT NULL"
                or not complete
                or compare(value, clause.comparator, clause.value)
            ):
                found.append(position_of(entry["sk"]))
        return found

    def _by_metrics(self, ascending: bool, runs: int) -> Iterator[str]:
        metric_clauses = RunQuery(tuple(c for c in self.query.clauses if c.kind == "metric"), ())
        pk = metrics_pk(self.experiment_id)
        phases = (
            [(RUN_TIMED_PREFIX, False), (RUN_UNTIMED_PREFIX, True)] if ascending else [(None, True)]
        )
        for prefix, forward in phases:
            buckets = self.table.query(pk, sk_prefix=prefix, forward=forward, page_size=2 * runs)
            for position, group in group_by_position(buckets):
                latest = latest_by_position(group).get(position, {})
                metrics = {key: latest_attribute(entry) for key, entry in latest.items()}
                if metric_clauses.matches({"metrics": metrics}):
                    yield position

    @staticmethod
    def _sorted(positions: list[str], ascending: bool) -> list[str]:
        unique = sorted(set(positions))
        if not ascending:
            return unique
        timed = [p for p in unique if p.startswith(RUN_TIMED_PREFIX)]
        return timed[::-1] + [p for p in unique if not p.startswith(RUN_TIMED_PREFIX)]


def _chained(*streams: Iterator[str]) -> Iterator[str]:
    for stream in streams:
        yield from stream


def _ascending_start(position: str) -> tuple[bool, str]:
    """Ascending start time (runs without one last), for positions of timed runs read backwards."""
    if not position.startswith(RUN_TIMED_PREFIX):
        return True, position
    return False, "".join(chr(ord("9") - ord(c) + ord("0")) for c in position[2:22])
