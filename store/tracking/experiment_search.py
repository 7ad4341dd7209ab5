"""search_experiments: MLflow's filter and order grammar evaluated over experiment items."""

from __future__ import annotations

from collections.abc import Callable

from mlflow.exceptions import MlflowException
from mlflow.utils.search_utils import SearchExperimentsUtils
from mlflow.utils.validation import _parse_experiment_id

from store.search.compare import Clause, compare, integer_operand

_STRING_COMPARATORS = ("=", "!=", "LIKE", "ILIKE")
_NUMERIC_COMPARATORS = ("=", "!=", "<", "<=", ">", ">=")
_ID_COMPARATORS = ("=", "!=", "IN", "NOT IN")
_DEFAULT_ORDER = ["creation_time DESC", "experiment_id ASC"]


def experiment_matcher(filter_string: str | None) -> Callable[[dict], bool]:
    """A predicate over experiment items; invalid filters raise INVALID_PARAMETER_VALUE."""
    clauses = [
        _clause(parsed) for parsed in SearchExperimentsUtils.parse_search_filter(filter_string)
    ]
    return lambda item: all(_matches(item, clause) for clause in clauses)


def sort_experiments(items: list[dict], order_by: list[str] | None) -> list[dict]:
    """Items in the SQL store's order (tie-break: experiment_id descending unless ordered on)."""
    keys = []
    for kind, key, ascending in map(
        SearchExperimentsUtils.parse_order_by_for_search_experiments, order_by or _DEFAULT_ORDER
    ):
        if kind != "attribute":
            raise MlflowException.invalid_parameter_value(f"Invalid order_by entity: {kind}")
        keys.append((key, ascending))
    if not any(key == "experiment_id" for key, _ in keys):
        keys.append(("experiment_id", False))
    ordered = list(items)
    for key, ascending in reversed(keys):  # stable sorts, last key first
        ordered.sort(key=lambda item, k=key: _sort_value(item, k), reverse=not ascending)
    return ordered


def _clause(parsed: dict) -> Clause:
    kind, key, comparator, value = (
        parsed["type"],
        parsed["key"],
        parsed["comparator"].upper(),
        parsed["value"],
    )
    if kind == "attribute":
        if key == "experiment_id":
            if comparator not in _ID_COMPARATORS:
                raise MlflowException.invalid_parameter_value(
                    f"Invalid comparator for experiment_id: {comparator}"
                )
            value = (
                tuple(_parse_experiment_id(v) for v in value)
                if isinstance(value, tuple)
                else _parse_experiment_id(value)
            )
        elif SearchExperimentsUtils.is_string_attribute(kind, key, comparator):
            if comparator not in _STRING_COMPARATORS:
                raise MlflowException.invalid_parameter_value(
                    f"Invalid comparator for string attribute: {comparator}"
                )
        elif SearchExperimentsUtils.is_numeric_attribute(kind, key, comparator):
            if comparator not in _NUMERIC_COMPARATORS:
                raise MlflowException.invalid_parameter_value(
                    f"Invalid comparator for numeric attribute: {comparator}"
                )
            value = integer_operand(key, value, quote_float=True)
    elif kind == "tag":
        if comparator not in (*_STRING_COMPARATORS, "IS NULL", "IS NOT NULL"):
            raise MlflowException.invalid_parameter_value(
                f"Invalid comparator for tag: {comparator}"
            )
    else:
        raise MlflowException.invalid_parameter_value(f"Invalid token type: {kind}")
    return Clause(kind, key, comparator, value)


def _matches(item: dict, clause: Clause) -> bool:
    if clause.kind == "tag":
        tag = item.get("tags", {}).get(clause.key)
        if clause.comparator in ("IS NULL", "IS NOT NULL"):
            return (tag is None) == (clause.comparator == "IS NULL")
        return compare(tag, clause.comparator, clause.value)
    return compare(_attribute(item, clause.key), clause.comparator, clause.value)


def _attribute(item: dict, key: str):
    if key == "experiment_id":
        return int(item["experiment_id"])
    return item.get(key)


def _sort_value(item: dict, key: str) -> tuple:
    value = _attribute(item, key)
    return (value is not None, value) if value is not None else (False, 0)
