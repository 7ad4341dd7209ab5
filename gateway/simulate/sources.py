"""Where the simulator reads role bindings: a bindings file, the live table, or nothing.

Every source answers like the gateway's resolver: `lookup(ref)` gives the bindings of the
experiment or registered model a reference belongs to, MISSING when it does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.routing.parse import ResourceRef
from gateway.simulate.bindings import BindingsData, VersionFacts, load_bindings
from gateway.simulate.inputs import InputError, Location


class BindingsSource(Protocol):
    description: str

    def prepare(self, refs: Iterable[ResourceRef]) -> None: ...
    def lookup(self, ref: ResourceRef) -> object: ...
    def version(self, model: str, version: str) -> VersionFacts | None: ...
    def aliases(self, model: str) -> Mapping[str, str] | None: ...
    def versions_in_stage(self, model: str, stage: str) -> tuple[str, ...] | None: ...
    def subject(self, user: str) -> str: ...


@dataclass
class FileSource:
    data: BindingsData
    description: str = "no bindings"

    def prepare(self, refs: Iterable[ResourceRef]) -> None:
        return None

    def lookup(self, ref: ResourceRef) -> object:
        return self.data.lookup(ref)

    def version(self, model: str, version: str) -> VersionFacts | None:
        return self.data.version(model, version)

    def aliases(self, model: str) -> dict[str, str] | None:
        return self.data.aliases(model)

    def versions_in_stage(self, model: str, stage: str) -> tuple[str, ...] | None:
        return self.data.versions_in_stage(model, stage)

    def subject(self, user: str) -> str:
        return user


class TableSource:
    """The gateway's own resolver on the table the deployment uses."""

    def __init__(self, uri: str):
        from gateway.authz.registry_facts import TableModelFacts
        from gateway.authz.resolver import Resolver
        from store.dynamo import DynamoTable

        self.table = DynamoTable.from_uri(uri)
        self.resolver = Resolver(self.table, ttl=3600.0)
        self.model_facts = TableModelFacts(self.resolver.ownership)
        self.description = f"bindings from {uri}"
        try:  # fail now, not as a denial per lookup: the table must answer
            self.resolver.ownership.check_readable()
        except Exception as exc:
            raise InputError(Location(uri), f"cannot read the table: {exc}") from None

    def prepare(self, refs: Iterable[ResourceRef]) -> None:
        self.resolver.load(list(refs))

    def lookup(self, ref: ResourceRef) -> object:
        self.prepare([ref])
        return self.resolver.lookup(ref)

    def version(self, model: str, version: str) -> VersionFacts | None:
        facts = self.resolver.model_version(model, version)
        return VersionFacts(facts.stage, facts.aliases) if facts else None

    def aliases(self, model: str) -> dict[str, str] | None:
        return self.model_facts.aliases(model)

    def versions_in_stage(self, model: str, stage: str) -> tuple[str, ...] | None:
        return self.model_facts.versions_in_stage(model, stage)

    def subject(self, user: str) -> str:
        """Bindings name users by principal id; a user name is translated when the table knows
        it (an ambiguous name is refused: give `name@tag` or the principal id)."""
        from store.bindings import find_principals

        found = find_principals(self.table, user)
        if len(found) > 1:
            options = ", ".join(f"{e.qualified_name} ({e.principal})" for e in found)
            raise InputError(Location(user), f"the user name is ambiguous: {options}")
        return found[0].principal if found else user


def open_source(bindings_file: str | None, table_uri: str | None) -> BindingsSource:
    if table_uri:
        return TableSource(table_uri)
    if bindings_file:
        return FileSource(load_bindings(bindings_file), f"bindings from {bindings_file}")
    return FileSource(BindingsData())
