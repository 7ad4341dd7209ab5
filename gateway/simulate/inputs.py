"""Reading the simulator's own input files (bindings, cases) with located errors.

YAML is read when PyYAML is installed (it comes with MLflow); JSON is a subset of YAML,
so both kinds of file get line and column numbers for every mapping. Without PyYAML only
`.json` files can be read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with MLflow
    yaml = None

# exit codes shared by every subcommand (documented in --help and policies/README.md)
EXIT_OK = 0  # ALLOW, all cases passed, no difference
EXIT_FINDING = 1  # DENY, a case failed, decisions differ
EXIT_USAGE = 2  # bad arguments
EXIT_POLICY = 3  # the policy set does not load (errors as FILE:LINE:COLUMN: message)
EXIT_INPUT = 4  # a bindings, case or audit file, table or git revision cannot be read


@dataclass(frozen=True)
class Location:
    file: str
    line: int = 1
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class InputError(ValueError):
    """A problem in an input file, located like the policy errors: FILE:LINE:COLUMN: message."""

    def __init__(self, where: Location, message: str):
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}")


class Located(dict):
    """A mapping read from a file, remembering where it started."""

    where: Location = Location("<input>")


def located(value: object, fallback: Location) -> Location:
    return value.where if isinstance(value, Located) else fallback


def read_document(path: str | Path) -> object:
    """Parse a YAML or JSON file; mappings come back as `Located` dicts."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(Location(str(path)), f"cannot read: {exc}") from None
    if yaml is not None:
        return _read_yaml(path, text)
    if path.suffix.lower() != ".json":
        raise InputError(Location(str(path)), "YAML needs PyYAML installed; use a .json file")
    try:
        return _locate_json(json.loads(text), Location(str(path)))
    except json.JSONDecodeError as exc:
        raise InputError(Location(str(path), exc.lineno, exc.colno), exc.msg) from None


def _read_yaml(path: Path, text: str) -> object:
    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: Loader, node) -> Located:
        out = Located(loader.construct_mapping(node, deep=True))
        mark = node.start_mark
        out.where = Location(str(path), mark.line + 1, mark.column + 1)
        return out

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(str(path), mark.line + 1, mark.column + 1) if mark else Location(str(path))
        raise InputError(where, f"{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise InputError(Location(str(path)), str(exc)) from None


def _locate_json(value: object, where: Location) -> object:
    if isinstance(value, Mapping):
        out = Located({k: _locate_json(v, where) for k, v in value.items()})
        out.where = where
        return out
    if isinstance(value, list):
        return [_locate_json(v, where) for v in value]
    return value


def expect_mapping(value: object, where: Location, what: str) -> Mapping:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(located(value, where), f"{what} must be a mapping")
    return value


def expect_strings(value: object, where: Location, what: str) -> tuple[str, ...]:
    """A list of strings, or one comma-separated string."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return tuple(str(v) for v in value)
    raise InputError(where, f"{what} must be a list of strings")
