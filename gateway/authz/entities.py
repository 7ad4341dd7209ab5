"""The Cedar entity graph for one caller and the resources a request touches.

Role bindings are plain data (`Bindings`); this module turns them into the graph the
policies in `policies/` read (see the schema): per experiment or registered model, role
nodes chained manager → editor → reader; the caller under the role nodes it is bound to
directly, under its groups, and its groups under the role nodes they are bound to.
Only the caller's own bindings matter, so the graph stays a dozen entities.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

import cedarpy

from store.vocabulary import DEFAULT_WORKSPACE, EXPERIMENT, REGISTERED_MODEL, ROLES, WORKSPACE

ADMIN_ROLE = {"type": "AdminRole", "id": "admin"}
# The Cedar entity type of each kind of resource a decision is made on (the schema's names).
CEDAR_TYPE = {WORKSPACE: "Workspace", EXPERIMENT: "Experiment", REGISTERED_MODEL: "RegisteredModel"}
KIND_OF_CEDAR_TYPE = {cedar_type: kind for kind, cedar_type in CEDAR_TYPE.items()}
WORKSPACE_UID = {"type": CEDAR_TYPE[WORKSPACE], "id": DEFAULT_WORKSPACE}


@dataclass(frozen=True)
class Bindings:
    """Who holds which role on one experiment or registered model.

    `kind`/`id` name the resource the bindings are on: looking up a run's bindings returns
    its experiment's. `users` maps subjects (Cognito `sub`) and `groups` maps group names
    to "reader" | "editor" | "manager". On a private experiment group bindings do not apply.
    """

    kind: str
    id: str
    users: tuple[tuple[str, str], ...] = ()
    groups: tuple[tuple[str, str], ...] = ()
    private: bool = False

    def __post_init__(self) -> None:
        if self.kind not in (EXPERIMENT, REGISTERED_MODEL):
            raise ValueError(f"bindings are on experiments or registered models, not {self.kind}")
        for subject, role in (*self.users, *self.groups):
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r} for {subject!r}")

    @classmethod
    def from_data(cls, kind: str, resource_id: str, data: Mapping) -> Bindings:
        """From `{"users": {subject: role}, "groups": {group: role}, "private": bool}`."""
        return cls(
            kind=kind,
            id=str(resource_id),
            users=tuple(sorted(dict(data.get("users") or {}).items())),
            groups=tuple(sorted(dict(data.get("groups") or {}).items())),
            private=bool(data.get("private", False)),
        )

    @property
    def cedar_uid(self) -> dict[str, str]:
        return {"type": CEDAR_TYPE[self.kind], "id": self.id}


def role_uid(kind: str, resource_id: str, role: str, *, group: bool = False) -> dict[str, str]:
    # ids are quoted: a model named "a/b" must not share role nodes with anything else
    chain = "group-" if group else ""
    return {"type": "Role", "id": f"{kind}/{quote(resource_id, safe='')}/{chain}{role}"}


def build_entities(
    subject: str,
    groups: Iterable[str],
    targets: Sequence[Bindings],
    admin_groups: Iterable[str] = (),
) -> list[dict]:
    """The entity list (Cedar JSON) for `subject` in `groups` deciding on `targets`."""
    groups = tuple(dict.fromkeys(groups))
    admin_groups = frozenset(admin_groups)
    user_parents: list[dict] = [{"type": "Group", "id": g} for g in groups]
    group_parents: dict[str, list[dict]] = {
        g: [ADMIN_ROLE] if g in admin_groups else [] for g in groups
    }
    entities: list[dict] = []
    for target in dict.fromkeys(targets):
        split = target.kind == EXPERIMENT  # experiments keep group bindings on their own chain
        entities.extend(_resource_entities(target, split))
        for bound, role in target.users:
            if bound == subject:
                user_parents.append(role_uid(target.kind, target.id, role))
        for bound, role in target.groups:
            if bound in group_parents:
                group_parents[bound].append(role_uid(target.kind, target.id, role, group=split))
    entities.append({"uid": {"type": "User", "id": subject}, "attrs": {}, "parents": user_parents})
    for name, parents in group_parents.items():
        entities.append({"uid": {"type": "Group", "id": name}, "attrs": {}, "parents": parents})
    entities.append({"uid": WORKSPACE_UID, "attrs": {}, "parents": []})
    entities.append({"uid": ADMIN_ROLE, "attrs": {}, "parents": []})
    return entities


def _resource_entities(target: Bindings, split: bool) -> list[dict]:
    out: list[dict] = []
    for group in (False, True) if split else (False,):
        # each role node is "in" the next lower one: manager in editor in reader
        for role, lower in zip(ROLES, (None, *ROLES), strict=False):
            parents = [role_uid(target.kind, target.id, lower, group=group)] if lower else []
            uid = role_uid(target.kind, target.id, role, group=group)
            out.append({"uid": uid, "attrs": {}, "parents": parents})
    attrs: dict = {
        name: {"__entity": role_uid(target.kind, target.id, role)}
        for name, role in (("readers", "reader"), ("editors", "editor"), ("managers", "manager"))
    }
    if split:
        attrs["private"] = target.private
        for name, role in (
            ("groupReaders", "reader"),
            ("groupEditors", "editor"),
            ("groupManagers", "manager"),
        ):
            attrs[name] = {"__entity": role_uid(target.kind, target.id, role, group=True)}
    out.append(
        {
            "uid": target.cedar_uid,
            "attrs": attrs,
            "parents": [WORKSPACE_UID],
        }
    )
    return out


@lru_cache(maxsize=4096)
def cached_entities(
    subject: str,
    groups: tuple[str, ...],
    targets: tuple[Bindings, ...],
    admin_groups: tuple[str, ...],
) -> cedarpy.Entities:
    """A parsed entity set, reused while the caller and the bindings stay the same."""
    return cedarpy.Entities.from_json_str(
        json.dumps(build_entities(subject, groups, targets, admin_groups))
    )
