"""Search semantics of MLflow's SQL registry store, applied to rows read from the table.

Filters and orders are parsed by MLflow's own `SearchModelUtils` / `SearchModelVersionUtils`,
then validated and evaluated the way `SqlAlchemyStore` does it on sqlite
(`store/search/compare.py`): a missing tag or attribute never matches, and prompts are
hidden unless the filter asks for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.prompt.constants import IS_PROMPT_TAG_KEY
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.utils.search_utils import SearchModelUtils, SearchModelVersionUtils, SearchUtils

from store.search.compare import Clause, compare, integer_operand
from store.search.pagination import next_page_token

_MODEL_ATTRIBUTE_COMPARATORS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
_TAG_COMPARATORS = ("=", "!=", "LIKE", "ILIKE")
DEFAULT_VERSION_ORDER = ["last_updated_timestamp DESC", "name ASC", "version_number DESC"]


@dataclass(frozen=True)
class Row:
    """What a filter or an order looks at: attribute values and tags, plus the source item."""

    attributes: dict[str, Any]
    tags: dict[str, str]
    item: dict = field(compare=False)
    extra: Any = field(default=None, compare=False)


@dataclass(frozen=True)
class Query:
    clauses: tuple[Clause, ...]
    wants_prompts: bool

    def equal_name(self) -> str | None:
        """The model name when the filter pins one with `name = '...'`."""
        for clause in self.clauses:
            if clause.kind == "attribute" and clause.key == "name" and clause.comparator == "=":
                return clause.value
        return None

    def run_ids(self, most: int) -> tuple[str, ...] | None:
        """The run ids when the filter pins at most `most` with `run_id = ` or `run_id IN`."""
        for clause in self.clauses:
            if clause.kind != "attribute" or clause.key != "run_id":
                continue
            if clause.comparator == "=":
                return (clause.value,)
            if clause.comparator == "IN" and len(set(clause.value)) <= most:
                return tuple(dict.fromkeys(clause.value))
        return None


# ---- filters ------------------------------------------------------------------------------------


def parse_model_filter(filter_string: str | None) -> list[dict]:
    """The filter's syntax only; `model_query` checks what the clauses compare."""
    return SearchModelUtils.parse_search_filter(filter_string)


def model_query(parsed: list[dict]) -> Query:
    for f in parsed:
        if f["type"] == "attribute":
            if f["key"] != "name":
                raise MlflowException(
                    f"Invalid attribute name: {f['key']}", error_code=INVALID_PARAMETER_VALUE
                )
            if f["comparator"] not in _MODEL_ATTRIBUTE_COMPARATORS:
                raise MlflowException(
                    f"Invalid comparator for attribute: {f['comparator']}",
                    error_code=INVALID_PARAMETER_VALUE,
                )
        elif f["type"] == "tag":
            _check_tag_comparator(f["comparator"])
        else:
            raise MlflowException(
                f"Invalid token type: {f['type']}", error_code=INVALID_PARAMETER_VALUE
            )
    return _query(parsed)


def parse_version_filter(filter_string: str | None) -> Query:
    parsed = SearchModelVersionUtils.parse_search_filter(filter_string)
    for f in parsed:
        key, comparator = f["key"], f["comparator"]
        if f["type"] == "attribute":
            if key not in SearchModelVersionUtils.VALID_SEARCH_ATTRIBUTE_KEYS:
                raise MlflowException(
                    f"Invalid attribute name: {key}", error_code=INVALID_PARAMETER_VALUE
                )
            if key in SearchModelVersionUtils.NUMERIC_ATTRIBUTES:
                if comparator not in SearchModelVersionUtils.VALID_NUMERIC_ATTRIBUTE_COMPARATORS:
                    raise MlflowException(
                        f"Invalid comparator for attribute {key}: {comparator}",
                        error_code=INVALID_PARAMETER_VALUE,
                    )
                f["value"] = integer_operand(key, f["value"])
            elif comparator not in SearchModelVersionUtils.VALID_STRING_ATTRIBUTE_COMPARATORS or (
                comparator in ("IN", "NOT IN") and key not in ("run_id", "name")
            ):
                raise MlflowException(
                    f"Invalid comparator for attribute: {comparator}",
                    error_code=INVALID_PARAMETER_VALUE,
                )
        elif f["type"] == "tag":
            _check_tag_comparator(comparator)
        else:
            raise MlflowException(
                f"Invalid token type: {f['type']}", error_code=INVALID_PARAMETER_VALUE
            )
    return _query(parsed)


def _check_tag_comparator(comparator: str) -> None:
    if comparator not in _TAG_COMPARATORS:
        raise MlflowException.invalid_parameter_value(f"Invalid comparator for tag: {comparator}")


def _query(parsed: list[dict]) -> Query:
    wants_prompts = _is_querying_prompt(parsed)
    clauses = tuple(
        Clause(f["type"], f["key"], f["comparator"], f["value"])
        for f in parsed
        # Without an explicit prompt query the prompt tag is not a filter: prompts are excluded.
        if wants_prompts or not (f["type"] == "tag" and f["key"] == IS_PROMPT_TAG_KEY)
    )
    return Query(clauses, wants_prompts)


def _is_querying_prompt(parsed: list[dict]) -> bool:
    for f in parsed:
        if f["type"] != "tag" or f["key"] != IS_PROMPT_TAG_KEY:
            continue
        return (f["comparator"] == "=" and f["value"].lower() == "true") or (
            f["comparator"] == "!=" and f["value"].lower() == "false"
        )
    return False


def is_prompt_tagged(tags: dict[str, str]) -> bool:
    return tags.get(IS_PROMPT_TAG_KEY) == "true"


def matches(row: Row, query: Query) -> bool:
    return all(_clause_matches(row, clause) for clause in query.clauses)


def _clause_matches(row: Row, clause: Clause) -> bool:
    # A missing tag row, like a NULL attribute, satisfies no comparison.
    source = row.tags if clause.kind == "tag" else row.attributes
    return compare(source.get(clause.key), clause.comparator, clause.value)


# ---- orders -------------------------------------------------------------------------------------


def parse_model_order(order_by: Sequence[str] | None) -> list[tuple[str, bool]]:
    """(field, ascending) pairs, as the SQL store orders registered models."""
    return _order_fields(list(order_by or []), _model_order_field, [("name", True)])


def _model_order_field(clause: str) -> tuple[str, bool]:
    key, ascending = SearchUtils.parse_order_by_for_search_registered_models(clause)
    if key == "name":
        return "name", ascending
    if key in SearchUtils.VALID_TIMESTAMP_ORDER_BY_KEYS:
        return "last_updated_time", ascending
    raise MlflowException(
        f"Invalid order by key '{key}' specified."
        + "Valid keys are "
        + f"'{SearchUtils.RECOMMENDED_ORDER_BY_KEYS_REGISTERED_MODELS}'",
        error_code=INVALID_PARAMETER_VALUE,
    )


_VERSION_ORDER_FIELDS = {
    "version_number": "version",
    "creation_timestamp": "creation_time",
    "last_updated_timestamp": "last_updated_time",
    "name": "name",
}


def parse_version_order(order_by: Sequence[str] | None) -> list[tuple[str, bool]]:
    """(field, ascending) pairs, as the SQL store orders model versions."""
    clauses = list(order_by or []) or DEFAULT_VERSION_ORDER
    return _order_fields(clauses, _version_order_field, [("name", True), ("version", False)])


def _version_order_field(clause: str) -> tuple[str, bool]:
    _, key, ascending = SearchModelVersionUtils.parse_order_by_for_search_model_versions(clause)
    if key not in SearchModelVersionUtils.VALID_ORDER_BY_ATTRIBUTE_KEYS:
        raise MlflowException(
            f"Invalid order by key '{key}' specified. "
            "Valid keys are "
            f"{SearchModelVersionUtils.VALID_ORDER_BY_ATTRIBUTE_KEYS}",
            error_code=INVALID_PARAMETER_VALUE,
        )
    return _VERSION_ORDER_FIELDS[key], ascending


def _order_fields(
    order_by: list[str],
    field_of: Callable[[str], tuple[str, bool]],
    tie_breakers: list[tuple[str, bool]],
) -> list[tuple[str, bool]]:
    """The fields of `order_by` (each at most once), then the tie-breakers not named."""
    fields: list[tuple[str, bool]] = []
    for clause in order_by:
        name, ascending = field_of(clause)
        if name in (f for f, _ in fields):
            raise MlflowException(f"`order_by` contains duplicate fields: {order_by}")
        fields.append((name, ascending))
    named = {f for f, _ in fields}
    return fields + [t for t in tie_breakers if t[0] not in named]


def sort_rows(rows: list[Row], order: list[tuple[str, bool]]) -> list[Row]:
    # Stable sorts from the least significant field up give a multi-key mixed-direction order.
    for name, ascending in reversed(order):
        rows = sorted(rows, key=_attribute(name), reverse=not ascending)
    return rows


def _attribute(name: str) -> Callable[[Row], Any]:
    return lambda row: row.attributes[name]


# ---- pages --------------------------------------------------------------------------------------


def page_of(
    rows: list[Row], offset: int, max_results: int, kind: str, search: object
) -> tuple[list[Row], str | None]:
    """One page and the token of the next one (None at the end), as the SQL store pages."""
    token = next_page_token(kind, offset, max_results, len(rows), search)
    return rows[offset : offset + max_results], token
