"""One UpdateItem, built one path at a time: its actions, its condition, every name and value
aliased (so attribute names need no escaping and a value never lands in the expression).

    update = Update().set(("tags", key), value).add("rev", 1).exists("pk")
    table.update(pk, sk, update)

A path is an attribute name or a tuple of names (`("tags", key)` is ``tags.<key>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Path = str | tuple[str, ...]


@dataclass
class Update:
    """SET / REMOVE / ADD / DELETE actions and the conditions (ANDed) the item must meet."""

    returns: str = "ALL_NEW"  # what UpdateItem answers: the item after it, or ALL_OLD before
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    _sets: list[str] = field(default_factory=list)
    _removes: list[str] = field(default_factory=list)
    _adds: list[str] = field(default_factory=list)
    _deletes: list[str] = field(default_factory=list)
    _conditions: list[str] = field(default_factory=list)
    _aliases: dict[str, str] = field(default_factory=dict)

    # ---- actions ------------------------------------------------------------------------

    def set(self, path: Path, value: Any) -> Update:
        self._sets.append(f"{self.path(path)} = {self.value(value)}")
        return self

    def set_if_missing(self, path: Path, value: Any) -> Update:
        target = self.path(path)
        self._sets.append(f"{target} = if_not_exists({target}, {self.value(value)})")
        return self

    def set_or_remove(self, path: Path, value: Any) -> Update:
        return self.remove(path) if value is None else self.set(path, value)

    def set_sum(self, path: Path, source: Path, amount: int) -> Update:
        """`path` = the stored `source` + `amount` (both read before this update applies)."""
        self._sets.append(f"{self.path(path)} = {self.path(source)} + {self.value(amount)}")
        return self

    def remove(self, path: Path) -> Update:
        self._removes.append(self.path(path))
        return self

    def add(self, path: Path, amount: Any) -> Update:
        """ADD: a number to a number (atomic counter), or elements to a set."""
        self._adds.append(f"{self.path(path)} {self.value(amount)}")
        return self

    def delete(self, path: Path, elements: set) -> Update:
        """DELETE: elements from a set (a set left empty disappears)."""
        self._deletes.append(f"{self.path(path)} {self.value(elements)}")
        return self

    # ---- conditions ---------------------------------------------------------------------

    def exists(self, path: Path) -> Update:
        self._conditions.append(f"attribute_exists({self.path(path)})")
        return self

    def missing(self, path: Path) -> Update:
        self._conditions.append(f"attribute_not_exists({self.path(path)})")
        return self

    def equals(self, path: Path, value: Any) -> Update:
        self._conditions.append(f"{self.path(path)} = {self.value(value)}")
        return self

    def require(self, condition: str) -> Update:
        """A condition written by hand with `path()` and `value()` aliases."""
        self._conditions.append(condition)
        return self

    def missing_or_below(self, path: Path, value: Any) -> Update:
        target = self.path(path)
        self._conditions.append(
            f"(attribute_not_exists({target}) OR {target} < {self.value(value)})"
        )
        return self

    def differs(self, path: Path, value: Any) -> Update:
        self._conditions.append(f"{self.path(path)} <> {self.value(value)}")
        return self

    # ---- the request --------------------------------------------------------------------

    def expression(self) -> str:
        clauses = []
        if self._sets:
            clauses.append("SET " + ", ".join(self._sets))
        if self._removes:
            clauses.append("REMOVE " + ", ".join(self._removes))
        if self._adds:
            clauses.append("ADD " + ", ".join(self._adds))
        if self._deletes:
            clauses.append("DELETE " + ", ".join(self._deletes))
        return " ".join(clauses)

    def condition(self) -> str | None:
        return " AND ".join(self._conditions) or None

    def __bool__(self) -> bool:
        return bool(self._sets or self._removes or self._adds or self._deletes)

    def path(self, path: Path) -> str:
        """The aliased form of `path`, for a condition written by hand."""
        parts = (path,) if isinstance(path, str) else path
        return ".".join(self._name(p) for p in parts)

    def value(self, value: Any) -> str:
        alias = f":v{len(self.values)}"
        self.values[alias] = value
        return alias

    def _name(self, name: str) -> str:
        if name not in self._aliases:
            alias = f"#n{len(self._aliases)}"
            self._aliases[name] = alias
            self.names[alias] = name
        return self._aliases[name]
