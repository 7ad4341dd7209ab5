"""Comparisons exactly as MLflow's SQL store evaluates them on sqlite.

NULL (a missing value) satisfies no comparison; LIKE is case-sensitive with `%` and `_`
wildcards and no escape character; ILIKE lowers ASCII letters only (sqlite's `lower`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from mlflow.exceptions import MlflowException

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def compare(comparator: str, lhs: Any, rhs: Any) -> bool:
    """`lhs <comparator> rhs` with SQL NULL semantics (None never matches)."""
    if lhs is None:
        return False
    return _COMPARATORS[comparator](lhs, rhs)


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


@functools.lru_cache(maxsize=256)
def _like_regex(pattern: str) -> re.Pattern:
    parts = [".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "LIKE": like,
    "ILIKE": ilike,
    "IN": lambda a, b: a in b,
    "NOT IN": lambda a, b: a not in b,
}
