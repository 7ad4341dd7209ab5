"""A run search's filter and order, parsed with MLflow's grammar (`SearchUtils`) and evaluated
as MLflow's SQL store evaluates it on sqlite: metrics compare their latest value (NaN matches
only `!=`, ±inf compare as ±max double), params/tags/attributes compare as strings or integers,
`run_name` filters compare the `mlflow.runName` tag (orders the run's name), datasets match
when any input of the run matches. Ordering puts missing values (and NaN metrics) last in both
directions, then `start_time DESC`, then `run_id`.

Everything here reads a run as `store/tracking/run_items.py` assembles it (RunView), whole or
with only the attributes a search gathered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_RUN_NAME
from mlflow.utils.search_utils import SearchUtils

from store.search.compare import Clause, compare
from store.tracking.items import MetricPoint

_ATTRIBUTE_ITEM_FIELDS = {"run_id": "run_id", "run_name": "name"}


@dataclass(frozen=True)
class RunOrder:
    kind: str
    key: str
    ascending: bool


@dataclass(frozen=True)
class RunQuery:
    """A parsed filter and order: what to keep, in which order, and which attributes it reads."""

    clauses: tuple[Clause, ...]
    orders: tuple[RunOrder, ...]

    def matches(self, item: dict) -> bool:
        return all(_matches(item, clause) for clause in self.clauses)

    def sort(self, items: list[dict]) -> list[dict]:
        ordered = sorted(items, key=lambda item: item["run_id"])
        if not any(o.kind == "attribute" and o.key == "start_time" for o in self.orders):
            ordered.sort(key=lambda item: _nullable(item.get("start_time")), reverse=True)
        for order in reversed(self.orders):  # stable sorts, least significant first
            ordered.sort(
                key=lambda item, o=order: _nullable(_order_value(item, o)),
                reverse=not order.ascending,
            )
            ordered.sort(key=lambda item, o=order: _missing_rank(item, o))
        return ordered

    def start_time_ascending(self) -> bool | None:
        """The direction of start time when it leads the order (none given: descending), or None
        when something else leads (the run index cannot serve that order)."""
        if not self.orders:
            return False
        first = self.orders[0]
        if first.kind == "attribute" and first.key == "start_time":
            return first.ascending
        return None


def parse_run_query(filter_string: str | None, order_by: list[str] | None) -> RunQuery:
    """Parse with MLflow's grammar; invalid filters or orders raise INVALID_PARAMETER_VALUE."""
    clauses = tuple(_clause(parsed) for parsed in SearchUtils.parse_search_filter(filter_string))
    return RunQuery(clauses, tuple(_orders(order_by)))


# ---- filters ----------------------------------------------------------------------------------


def _clause(parsed: dict) -> Clause:
    kind = parsed["type"]
    key = SearchUtils.translate_key_alias(parsed["key"])
    comparator = parsed["comparator"].upper()
    value = parsed["value"]
    # Same validation order as the SQL store: attribute comparators first, then the entity's.
    if SearchUtils.is_string_attribute(kind, key, comparator) or SearchUtils.is_numeric_attribute(
        kind, key, comparator
    ):
        return Clause("attribute", key, comparator, value)
    if SearchUtils.is_metric(kind, comparator):
        return Clause("metric", key, comparator, float(value))
    if (
        SearchUtils.is_param(kind, comparator)
        or SearchUtils.is_tag(kind, comparator)
        or SearchUtils.is_dataset(kind, comparator)
    ):
        return Clause(kind, key, comparator, value)
    raise MlflowException(f"Invalid search expression type '{kind}'", INVALID_PARAMETER_VALUE)


def _matches(item: dict, clause: Clause) -> bool:
    kind, key, comparator, value = clause.kind, clause.key, clause.comparator, clause.value
    if kind == "attribute":
        if key == "run_name":
            return compare(item.get("tags", {}).get(MLFLOW_RUN_NAME), comparator, value)
        return compare(item.get(_ATTRIBUTE_ITEM_FIELDS.get(key, key)), comparator, value)
    if kind == "metric":
        attribute = item.get("metrics", {}).get(key)
        if attribute is None:
            return False
        point = MetricPoint.from_attribute(key, attribute)
        if point.is_nan:
            return comparator == "!="
        return compare(point.rank, comparator, value)
    if kind in ("parameter", "tag"):
        current = item.get("params" if kind == "parameter" else "tags", {}).get(key)
        if comparator in ("IS NULL", "IS NOT NULL"):
            return (current is None) == (comparator == "IS NULL")
        return compare(current, comparator, value)
    return _matches_dataset(item, key, comparator, value)


def _matches_dataset(item: dict, key: str, comparator: str, value) -> bool:
    for ref in item.get("inputs", []):
        if key == "context":
            contexts = [v for k, v in ref.get("tags", []) if k == MLFLOW_DATASET_CONTEXT]
            if any(compare(context, comparator, value) for context in contexts):
                return True
        elif compare(ref.get(key), comparator, value):
            return True
    return False


# ---- ordering ---------------------------------------------------------------------------------


def _orders(order_by: list[str] | None) -> list[RunOrder]:
    orders: list[RunOrder] = []
    seen = set()
    for clause in order_by or []:
        kind, key, ascending = SearchUtils.parse_order_by_for_search_runs(clause)
        key = SearchUtils.translate_key_alias(key)
        if not (
            SearchUtils.is_string_attribute(kind, key, "=")
            or SearchUtils.is_numeric_attribute(kind, key, "=")
            or SearchUtils.is_metric(kind, "=")
            or SearchUtils.is_tag(kind, "=")
            or SearchUtils.is_param(kind, "=")
        ):
            raise MlflowException(f"Invalid identifier type '{kind}'", INVALID_PARAMETER_VALUE)
        if (kind, key) in seen:
            raise MlflowException(f"`order_by` contains duplicate fields: {order_by}")
        seen.add((kind, key))
        orders.append(RunOrder(kind, key, ascending))
    return orders


def _order_value(item: dict, order: RunOrder):
    if order.kind == "attribute":
        return item.get(_ATTRIBUTE_ITEM_FIELDS.get(order.key, order.key))
    if order.kind == "metric":
        attribute = item.get("metrics", {}).get(order.key)
        return None if attribute is None else MetricPoint.from_attribute(order.key, attribute).rank
    return item.get("params" if order.kind == "parameter" else "tags", {}).get(order.key)


def _missing_rank(item: dict, order: RunOrder) -> int:
    """0 for a value, then (metrics) 1 for NaN, then the missing ones; in both directions."""
    if order.kind == "metric":
        attribute = item.get("metrics", {}).get(order.key)
        if attribute is None:
            return 2
        return 1 if MetricPoint.from_attribute(order.key, attribute).is_nan else 0
    return 0 if _order_value(item, order) is not None else 1


def _nullable(value) -> tuple:
    # SQL NULL sorts before every value (ascending); NaN metrics are ranked 0 like the SQL store.
    return (False, 0) if value is None else (True, value)


# ---- reading in index order ------------------------------------------------------------------

Position = Callable[[dict], tuple]


def start_time_position(ascending: bool, *, with_run_id: bool) -> Position:
    """Where a run falls in start-time order (no start time last), optionally down to its id."""

    def position(item: dict) -> tuple:
        start = item.get("start_time")
        timed = (1, 0) if start is None else (0, start if ascending else -start)
        return (*timed, item["run_id"]) if with_run_id else timed

    return position


def first_runs(items: Iterator[dict], count: int, position: Position) -> tuple[list[dict], bool]:
    """The first `count` items, plus those tied with the last of them; and whether more follow.

    `items` come in `position` order, so what is returned holds the first `count` runs of the
    full order whatever breaks the ties.
    """
    taken: list[dict] = []
    for item in items:
        if len(taken) >= count and (not taken or position(item) != position(taken[-1])):
            return taken, True
        taken.append(item)
    return taken, False
