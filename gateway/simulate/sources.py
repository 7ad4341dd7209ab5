"""Where the simulator reads its facts: a bindings file, the live table, or nothing.

Both are facts sources of gateway/pipeline.py (`Facts`), so `request` runs the gateway's own
pipeline on them; the table source is the gateway's resolver itself. Each also answers the
simulator's own questions: `lookup(ref)` for `check` and `replay`, a version's facts, and the
principal id a user name stands for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from gateway.authz.decide import BindingsLookup
from gateway.authz.model_readers import ArtifactRead
from gateway.authz.registry_facts import registry_context
from gateway.authz.resolver import Resolver
from gateway.pipeline import Facts
from gateway.routing.parse import ParsedRequest, ResourceRef
from gateway.simulate.bindings import BindingsData, VersionFacts, load_bindings
from gateway.simulate.inputs import InputError, Location


class BindingsSource(Facts, Protocol):
    description: str

    def lookup(self, ref: ResourceRef) -> object: ...
    def version_facts(self, model: str, version: str) -> VersionFacts | None: ...
    def subject(self, user: str) -> str: ...


@dataclass
class FileSource:
    """Facts from a bindings file (gateway/simulate/bindings.py)."""

    data: BindingsData
    description: str = "no bindings"

    async def prefetch(self, refs: Iterable[ResourceRef]) -> BindingsLookup:
        return self.data.lookup

    async def registry_context(self, parsed: ParsedRequest) -> dict | None:
        return registry_context(parsed, self.data)

    async def models_registered_from(self, read: ArtifactRead) -> tuple[str, ...]:
        return self.data.models_registered_from(read)

    async def dataset_experiments(
        self, dataset_ids: tuple[str, ...]
    ) -> dict[str, tuple[str, ...] | None]:
        return {i: self.data.datasets.get(i) for i in dataset_ids}

    def lookup(self, ref: ResourceRef) -> object:
        return self.data.lookup(ref)

    def version_facts(self, model: str, version: str) -> VersionFacts | None:
        return self.data.version(model, version)

    def subject(self, user: str) -> str:
        return user


class TableSource(Resolver):
    """The gateway's own resolver on the table the deployment uses (cached for the run)."""

    def __init__(self, uri: str):
        from store.dynamo.table import DynamoTable

        super().__init__(DynamoTable.from_uri(uri), ttl=3600.0)
        self.description = f"bindings from {uri}"
        try:  # fail now, not as a denial per lookup: the table must answer
            self.ownership.check_readable()
        except Exception as exc:
            raise InputError(Location(uri), f"cannot read the table: {exc}") from None

    def lookup(self, ref: ResourceRef) -> object:
        """Bindings of `ref`'s experiment or model, read now if not cached."""
        return self.load([ref])[ref]

    def version_facts(self, model: str, version: str) -> VersionFacts | None:
        if not version.isdigit():
            return None
        facts = self.version(model, int(version))
        return VersionFacts(facts.stage, facts.aliases) if facts else None

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
