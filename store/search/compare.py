"""Comparisons of MLflow's search grammars, evaluated in memory the way MLflow's SQL store does.

Shared by the logged-model and trace searches: a missing value never matches (SQL's NULL), LIKE
and ILIKE follow MLflow's documented semantics (``%`` and ``_`` wildcards; LIKE case-sensitive),
RLIKE is a Python regular-expression search.
"""

from __future__ import annotations

import re
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.utils.search_utils import _ilike, _like

_NUMERIC_OPS = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def compare(lhs: Any, op: str, rhs: Any) -> bool:
    """`lhs <op> rhs` with SQL's rules: None (NULL) on the left never matches."""
    if lhs is None:
        return False
    op = op.upper()
    if op == "LIKE":
        return _like(str(lhs), str(rhs))
    if op == "ILIKE":
        return _ilike(str(lhs), str(rhs))
    if op == "RLIKE":
        try:
            return re.search(str(rhs), str(lhs)) is not None
        except re.error:
            return False
    if op == "IN":
        return lhs in rhs
    if op == "NOT IN":
        return lhs not in rhs
    if op not in _NUMERIC_OPS:
        raise MlflowException.invalid_parameter_value(f"Invalid comparator '{op}'")
    lhs, rhs = _comparable(lhs, rhs)
    return _NUMERIC_OPS[op](lhs, rhs)


def _comparable(lhs: Any, rhs: Any) -> tuple[Any, Any]:
    """SQLite's cross-type ordering: a number column compared with text tries a numeric
    reading of the text, and otherwise every number sorts before every text."""
    lhs_num = isinstance(lhs, int | float) and not isinstance(lhs, bool)
    rhs_num = isinstance(rhs, int | float) and not isinstance(rhs, bool)
    if lhs_num and isinstance(rhs, str):
        try:
            return lhs, float(rhs)
        except ValueError:
            return (0, lhs), (1, rhs)
    if rhs_num and isinstance(lhs, str):
        return str(lhs), str(rhs)
    return lhs, rhs


class NullsLast:
    """Sort key wrapper: None after every value, whatever the direction."""

    __slots__ = ("value", "descending")

    def __init__(self, value: Any, descending: bool = False) -> None:
        self.value = value
        self.descending = descending

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NullsLast) and self.value == other.value

    def __lt__(self, other: NullsLast) -> bool:
        if self.value is None:
            return False
        if other.value is None:
            return True
        if self.descending:
            return other.value < self.value
        return self.value < other.value
