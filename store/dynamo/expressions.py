"""A DynamoDB UpdateExpression built one path at a time, every name and value aliased."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Update:
    """Collects SET / REMOVE actions; `set(("tags", key), value)` writes ``tags.<key>``."""

    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    _sets: list[str] = field(default_factory=list)
    _removes: list[str] = field(default_factory=list)
    _aliases: dict[str, str] = field(default_factory=dict)

    def path(self, *parts: str) -> str:
        return ".".join(self._name(p) for p in parts)

    def value(self, value: Any) -> str:
        alias = f":v{len(self.values)}"
        self.values[alias] = value
        return alias

    def set(self, path: str | tuple[str, ...], value: Any) -> Update:
        target = self.path(*_parts(path))
        self._sets.append(f"{target} = {self.value(value)}")
        return self

    def set_if_missing(self, path: str | tuple[str, ...], value: Any) -> Update:
        target = self.path(*_parts(path))
        self._sets.append(f"{target} = if_not_exists({target}, {self.value(value)})")
        return self

    def set_or_remove(self, path: str | tuple[str, ...], value: Any) -> Update:
        return self.remove(path) if value is None else self.set(path, value)

    def remove(self, path: str | tuple[str, ...]) -> Update:
        self._removes.append(self.path(*_parts(path)))
        return self

    def expression(self) -> str:
        clauses = []
        if self._sets:
            clauses.append("SET " + ", ".join(self._sets))
        if self._removes:
            clauses.append("REMOVE " + ", ".join(self._removes))
        return " ".join(clauses)

    def __bool__(self) -> bool:
        return bool(self._sets or self._removes)

    def _name(self, name: str) -> str:
        if name not in self._aliases:
            alias = f"#n{len(self._aliases)}"
            self._aliases[name] = alias
            self.names[alias] = name
        return self._aliases[name]


def _parts(path: str | tuple[str, ...]) -> tuple[str, ...]:
    return (path,) if isinstance(path, str) else path
