"""Comparisons of MLflow's search grammars, evaluated in memory as MLflow's SQL store does on
sqlite. Every search (experiments, runs, logged models, traces, registry) uses this module.

NULL (a missing value) satisfies no comparison; LIKE is case-sensitive with `%` and `_`
wildcards and no escape character; ILIKE lowers ASCII letters only (sqlite's `lower`); RLIKE
is a Python regular-expression search; a number compared with text follows sqlite's
cross-type rules.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlflow.exceptions import MlflowException

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class Clause:
    """One comparison of a parsed filter: `<kind>.<key> <comparator> <value>`."""

    kind: str  # "attribute", "tag", "metric", "param", "dataset", ...
    key: str
    comparator: str
    value: Any


def compare(lhs: Any, op: str, rhs: Any) -> bool:
    """`lhs <op> rhs` with SQL's rules: None (NULL) on the left never matches."""
    if lhs is None:
        return False
    op = op.upper()
    if op in _TEXT_OPERATORS:
        return _TEXT_OPERATORS[op](str(lhs), str(rhs))
    if op == "IN":
        return lhs in rhs
    if op == "NOT IN":
        return lhs not in rhs
    if op not in _ORDER_OPERATORS:
        raise MlflowException.invalid_parameter_value(f"Invalid comparator '{op}'")
    return _ORDER_OPERATORS[op](*_comparable(lhs, rhs))


def integer_operand(key: str, value: Any, *, quote_float: bool = False) -> int:
    """The integer a numeric attribute is compared with; a float or a non-number is refused.

    MLflow's experiment search quotes a refused float in its message, its registry search does
    not; ``quote_float`` picks the experiment wording.
    """
    if isinstance(value, float):
        shown = repr(str(value)) if quote_float else repr(value)
        raise MlflowException.invalid_parameter_value(
            f"Invalid value for numeric attribute '{key}': {shown}"
        )
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MlflowException.invalid_parameter_value(
            f"Invalid value for numeric attribute '{key}': {value!r}"
        ) from None


def like(value: str, pattern: str) -> bool:
    return _like_regex(pattern).fullmatch(value) is not None


def ilike(value: str, pattern: str) -> bool:
    return like(value.translate(_ASCII_LOWER), pattern.translate(_ASCII_LOWER))


def rlike(value: str, pattern: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return False


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


@functools.lru_cache(maxsize=256)
def _like_regex(pattern: str) -> re.Pattern:
    parts = [".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


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


_TEXT_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "LIKE": like,
    "ILIKE": ilike,
    "RLIKE": rlike,
}
_ORDER_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
