"""What a policy set talks about: its actions per resource type, and where policies live.

Actions come from the schema's `action ... appliesTo { resource: [...] }` declarations
(the set the validator accepts); policies from the loaded bundle's sources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gateway.authz.entities import CEDAR_TYPE, KIND_OF_CEDAR_TYPE
from gateway.authz.policies import SCHEMA_FILE, PolicyBundle, PolicySource

# Cedar entity type → the simulator's resource type names (as in `--resource`)
RESOURCE_TYPES = KIND_OF_CEDAR_TYPE
TYPE_LABELS = {kind: kind.replace("_", " ") for kind in CEDAR_TYPE}

_COMMENT = re.compile(r"//[^\n]*")
_ACTION = re.compile(r"\baction\s+(.+?)\s+appliesTo\s*\{(.*?)\}\s*;", re.S)
_RESOURCE = re.compile(r"\bresource\s*:\s*\[?\s*([A-Za-z_:][A-Za-z0-9_:, ]*)\]?")


@dataclass(frozen=True)
class Catalog:
    """Actions by resource kind (workspace, experiment, registered model), in order."""

    actions: dict[str, tuple[str, ...]]

    def resource_type(self, action: str) -> str | None:
        for rtype, names in self.actions.items():
            if action in names:
                return rtype
        return None

    def all_actions(self) -> tuple[str, ...]:
        return tuple(a for names in self.actions.values() for a in names)


def catalog(bundle: PolicyBundle) -> Catalog:
    return schema_catalog((Path(bundle.directory) / SCHEMA_FILE).read_text())


def schema_catalog(schema_text: str) -> Catalog:
    text = _COMMENT.sub("", schema_text)
    out: dict[str, list[str]] = {t: [] for t in RESOURCE_TYPES.values()}
    for m in _ACTION.finditer(text):
        names = [n.strip().strip('"') for n in m.group(1).split(",") if n.strip()]
        resources = _RESOURCE.search(m.group(2))
        if not resources:
            continue
        for entity in (r.strip() for r in resources.group(1).split(",")):
            rtype = RESOURCE_TYPES.get(entity)
            if rtype is not None:
                out[rtype].extend(n for n in names if n not in out[rtype])
    return Catalog({t: tuple(names) for t, names in out.items() if names})


def describe_policy(bundle: PolicyBundle, policy_id: str) -> str:
    """`id (file:line)` with the file relative to the working directory when it can be."""
    source = bundle.sources.get(policy_id)
    if source is None:
        return policy_id
    return f"{policy_id} ({where(source)})"


def where(source: PolicySource) -> str:
    return f"{relative(source.file)}:{source.line}"


def relative(path: str | Path) -> str:
    if "://" in str(path):  # a table URI, not a file
        return str(path)
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
