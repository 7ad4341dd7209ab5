"""MLflow's evaluation-dataset search grammar, evaluated on dataset items as its SQL store does.

Parsing is MLflow's own (`SearchEvaluationDatasetsUtils`), so the same strings are accepted and
refused; the SQL store's extra checks (comparators per attribute kind, integer values for the
time attributes) follow with its messages. Comparisons come from `store/search/compare.py`.
Order: the given keys (`name`, `created_time`, `last_update_time`), default `created_time DESC`,
then `dataset_id DESC` as the tie-breaker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.utils.search_utils import SearchEvaluationDatasetsUtils

from store.search.compare import Clause, NullsLast, compare

_STRING_COMPARATORS = ("=", "!=", "LIKE", "ILIKE")
_NUMERIC = SearchEvaluationDatasetsUtils.NUMERIC_ATTRIBUTES


def parse_dataset_filter(filter_string: str | None) -> list[Clause]:
    """The clauses of a dataset filter, or MLflow's error for it."""
    if not filter_string:
        return []
    clauses = []
    for parsed in SearchEvaluationDatasetsUtils.parse_search_filter(filter_string):
        kind, key, comparator, value = (parsed[k] for k in ("type", "key", "comparator", "value"))
        if kind == "attribute":
            value = _attribute_operand(key, comparator, value)
        elif kind == "tag":
            if comparator not in _STRING_COMPARATORS:
                raise MlflowException.invalid_parameter_value(
                    f"Invalid comparator for tag: {comparator}"
                )
        else:
            raise MlflowException.invalid_parameter_value(f"Invalid token type: {kind}")
        clauses.append(Clause(kind, key, comparator, value))
    return clauses


def _attribute_operand(key: str, comparator: str, value: Any) -> Any:
    if (
        SearchEvaluationDatasetsUtils.is_string_attribute("attribute", key, comparator)
        and comparator not in _STRING_COMPARATORS
        and not (key == "name" and comparator == "IN")
    ):
        raise MlflowException.invalid_parameter_value(
            f"Invalid comparator for string attribute: {comparator}"
        )
    if key not in _NUMERIC:
        return value
    if comparator not in SearchEvaluationDatasetsUtils.VALID_NUMERIC_ATTRIBUTE_COMPARATORS:
        raise MlflowException.invalid_parameter_value(
            f"Invalid comparator for numeric attribute: {comparator}"
        )
    if isinstance(value, float):
        raise MlflowException.invalid_parameter_value(
            f"Invalid value for numeric attribute '{key}': {str(value)!r}"
        )
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MlflowException.invalid_parameter_value(
            f"Invalid value for numeric attribute '{key}': {value!r}"
        ) from None


def dataset_matches(item: dict, clauses: list[Clause]) -> bool:
    """Whether a dataset item satisfies every clause (NULL satisfies none)."""
    for clause in clauses:
        if clause.kind == "tag":
            tags = item.get("tags") or {}
            if clause.key not in tags or not compare(
                tags[clause.key], clause.comparator, clause.value
            ):
                return False
        elif not compare(item.get(clause.key), clause.comparator, clause.value):
            return False
    return True


def dataset_sort_key(order_by: list[str] | None) -> Callable[[dict], tuple]:
    """The sort key of MLflow's dataset order (validated as MLflow validates it)."""
    fields: list[tuple[str, bool]] = []
    for clause in order_by or ["created_time DESC"]:
        kind, key, ascending = (
            SearchEvaluationDatasetsUtils.parse_order_by_for_search_evaluation_datasets(clause)
        )
        if kind != "attribute":
            raise MlflowException.invalid_parameter_value(f"Invalid order_by entity: {kind}")
        fields.append((key, ascending))
    fields.append(("dataset_id", False))
    return lambda item: tuple(NullsLast(item.get(key), not asc) for key, asc in fields)
