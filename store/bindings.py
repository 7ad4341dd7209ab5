"""Role bindings: who holds which role on an experiment or a registered model.

Bindings live on the resource's own item (the experiment item `EXP#<id>`, the registered
model item `RMNAME#<name>`), in three attributes:

    acl_users    {principal: role} users by principal id (`<issuer tag>:<sub>`, `service:<name>`)
    acl_groups   {group: role}     groups by name
    acl_private  bool              experiments only: group bindings do not apply

so that creating a resource and its default bindings is one PutItem, and every grant or
revoke is one conditional UpdateItem on that item. Roles are "reader", "editor" and
"manager" (each includes the ones before it; the policies in `policies/` say what each
may call).

Defaults on creation (`DefaultBindingRules`, read from the environment of the process that
creates the item): the creator is the manager; the creator's group is an editor of an
experiment and a reader of a registered model. The creator's group is the first of the
caller's groups that is neither an admin group nor listed in `CEDARFLOW_CREATOR_GROUP_IGNORE`
(identity providers put the main team first; admin groups would otherwise hand a new
resource to every administrator's team).

The user directory (`USER#<name>` / `P#<principal id>`, one item per principal) lets a grant
name a user the way MLflow's permissions client does, by user name; the gateway records each
principal it authenticates. A name may belong to several principals (a user of each of two
trusted issuers, a machine client named like a user): such a name is ambiguous, and a grant
must then name one of them as `name@<issuer tag>` or by principal id.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from store.dynamo.errors import ConditionFailed
from store.dynamo.expressions import Update
from store.dynamo.schema import GSI1
from store.dynamo.table import DynamoTable
from store.handler.identity import Principal, current_principal
from store.keys import (
    EXPERIMENTS_INDEX_PK,
    REGISTERED_MODELS_INDEX_PK,
    USER_PRINCIPAL_PREFIX,
    USERS_INDEX_PK,
    experiment_key,
    registered_model_key,
    user_key,
    users_index_sk,
    users_pk,
)
from store.vocabulary import EXPERIMENT, REGISTERED_MODEL, ROLES

USERS = "acl_users"
GROUPS = "acl_groups"
PRIVATE = "acl_private"
_NO_ROLE = "none"


class UnknownResource(Exception):
    """The experiment or registered model does not exist."""


@dataclass(frozen=True)
class DefaultBindingRules:
    """The bindings written when a resource is created."""

    creator_role: str = "manager"
    experiment_group_role: str = "editor"  # "none" = the creator's group gets nothing
    model_group_role: str = "reader"
    ignored_groups: tuple[str, ...] = ("admins",)  # never "the creator's group"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DefaultBindingRules:
        """CEDARFLOW_CREATOR_ROLE, CEDARFLOW_EXPERIMENT_GROUP_ROLE, CEDARFLOW_MODEL_GROUP_ROLE,
        CEDARFLOW_ADMIN_GROUPS and CEDARFLOW_CREATOR_GROUP_IGNORE (comma-separated)."""
        env = os.environ if environ is None else environ
        ignored = _names(env.get("CEDARFLOW_ADMIN_GROUPS", "admins"))
        ignored += _names(env.get("CEDARFLOW_CREATOR_GROUP_IGNORE", ""))
        rules = cls(
            creator_role=env.get("CEDARFLOW_CREATOR_ROLE", "manager"),
            experiment_group_role=env.get("CEDARFLOW_EXPERIMENT_GROUP_ROLE", "editor"),
            model_group_role=env.get("CEDARFLOW_MODEL_GROUP_ROLE", "reader"),
            ignored_groups=tuple(dict.fromkeys(ignored)),
        )
        for role in (rules.creator_role, rules.experiment_group_role, rules.model_group_role):
            if role not in (*ROLES, _NO_ROLE):
                raise ValueError(f"unknown role {role!r} in the default binding settings")
        return rules

    def creator_group(self, principal: Principal) -> str | None:
        return next((g for g in principal.groups if g not in self.ignored_groups), None)

    def group_role(self, kind: str) -> str:
        return self.experiment_group_role if kind == EXPERIMENT else self.model_group_role


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def creation_bindings(
    kind: str, principal: Principal | None = None, rules: DefaultBindingRules | None = None
) -> dict:
    """The binding attributes to put on a new item (empty when nobody is calling).

    Without a principal (a direct, unauthenticated use of the store) the resource gets no
    bindings: only administrators can reach it through the gateway.
    """
    principal = principal if principal is not None else current_principal()
    if principal is None or principal.kind == "anonymous":
        return {}
    rules = rules or DefaultBindingRules.from_env()
    users = {} if rules.creator_role == _NO_ROLE else {principal.subject: rules.creator_role}
    groups = {}
    group = rules.creator_group(principal)
    if group and rules.group_role(kind) != _NO_ROLE:
        groups[group] = rules.group_role(kind)
    attrs = {USERS: users, GROUPS: groups}
    if kind == EXPERIMENT:
        attrs[PRIVATE] = False
    return attrs


@dataclass(frozen=True)
class BindingData:
    """The bindings read from one item."""

    users: Mapping[str, str]
    groups: Mapping[str, str]
    private: bool = False

    def as_dict(self) -> dict:
        return {"users": dict(self.users), "groups": dict(self.groups), "private": self.private}


def bindings_of_item(item: Mapping) -> BindingData:
    return BindingData(
        users=dict(item.get(USERS) or {}),
        groups=dict(item.get(GROUPS) or {}),
        private=bool(item.get(PRIVATE, False)),
    )


def item_key(kind: str, resource_id: str) -> tuple[str, str]:
    if kind == EXPERIMENT:
        return experiment_key(resource_id)
    if kind == REGISTERED_MODEL:
        return registered_model_key(resource_id)
    raise ValueError(f"bindings are on experiments or registered models, not {kind}")


class BindingStore:
    """Grant, revoke and read bindings; every change is one conditional UpdateItem."""

    def __init__(self, table: DynamoTable):
        self.table = table

    def read(self, kind: str, resource_id: str) -> BindingData:
        item = self.table.get(*item_key(kind, resource_id))
        if item is None or _is_hidden(kind, item):
            raise UnknownResource(f"{kind} {resource_id!r} does not exist")
        return bindings_of_item(item)

    def grant(
        self, kind: str, resource_id: str, role: str, *, user: str | None = None,
        group: str | None = None,
    ) -> BindingData:  # fmt: skip
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        attribute, who = _target(user, group)
        return self._update(
            kind, resource_id, Update().set((attribute, who), role).exists(attribute)
        )

    def revoke(
        self, kind: str, resource_id: str, *, user: str | None = None, group: str | None = None
    ) -> BindingData:
        attribute, who = _target(user, group)
        return self._update(kind, resource_id, Update().remove((attribute, who)).exists(attribute))

    def set_private(self, experiment_id: str, private: bool) -> BindingData:
        return self._update(EXPERIMENT, experiment_id, Update().set(PRIVATE, bool(private)))

    def _update(self, kind: str, resource_id: str, update: Update) -> BindingData:
        pk, sk = item_key(kind, resource_id)
        update = _existing(kind, update)
        for _ in range(2):
            try:
                return bindings_of_item(self.table.update(pk, sk, update))
            except ConditionFailed:
                if not self._add_empty_maps(kind, pk, sk):
                    raise UnknownResource(f"{kind} {resource_id!r} does not exist") from None
        raise UnknownResource(f"{kind} {resource_id!r} cannot be changed now; retry")

    def _add_empty_maps(self, kind: str, pk: str, sk: str) -> bool:
        """Items created before bindings existed (the default experiment) get empty maps."""
        update = Update().set_if_missing(USERS, {}).set_if_missing(GROUPS, {})
        try:
            self.table.update(pk, sk, _existing(kind, update))
        except ConditionFailed:
            return False
        return True


def _existing(kind: str, update: Update) -> Update:
    """`update`, on condition that the resource exists."""
    update.exists("pk")
    if kind == REGISTERED_MODEL:
        # a rename copies the item and deletes the old one only if `rev` did not move
        update.add("rev", 1).missing("renamed_from")
    return update


def _target(user: str | None, group: str | None) -> tuple[str, str]:
    if bool(user) == bool(group):
        raise ValueError("name exactly one user or one group")
    return (USERS, user) if user else (GROUPS, group)


def _is_hidden(kind: str, item: Mapping) -> bool:
    return kind == REGISTERED_MODEL and "renamed_from" in item


# ---- the user directory ---------------------------------------------------------------


@dataclass(frozen=True)
class DirectoryEntry:
    """One principal that has signed in under a name."""

    principal: str  # the principal id bindings use: "<issuer tag>:<claim>" or "service:<name>"
    name: str  # the user name (or service name) it signs in with
    kind: str = "user"
    groups: tuple[str, ...] = ()

    @property
    def issuer_tag(self) -> str:
        return self.principal.split(":", 1)[0]

    @property
    def qualified_name(self) -> str:
        """`name@tag`: the name as a grant may give it when several principals share it."""
        return f"{self.name}@{self.issuer_tag}"


def remember_user(table: DynamoTable, principal: Principal) -> None:
    """Record that `principal` signs in as `principal.username` (idempotent).

    One item per (name, principal): a second issuer's user, or a machine client, of the same
    name adds its own item and never takes over the first one's.
    """
    pk, sk = user_key(principal.username, principal.subject)
    table.put(
        {
            "pk": pk,
            "sk": sk,
            "gsi1pk": USERS_INDEX_PK,  # the users list (`users/list`)
            "gsi1sk": users_index_sk(principal.username, principal.subject),
            "principal": principal.subject,
            "name": principal.username,
            "kind": principal.kind,
            "groups": list(principal.groups),  # for "what may this user do" questions
        }
    )


def principals_named(table: DynamoTable, name: str) -> tuple[DirectoryEntry, ...]:
    """Every principal that has signed in as `name` (one Query)."""
    items = table.query(users_pk(name), sk_prefix=USER_PRINCIPAL_PREFIX, consistent=True)
    return tuple(
        DirectoryEntry(
            principal=str(item["principal"]),
            name=str(item.get("name", name)),
            kind=str(item.get("kind", "user")),
            groups=tuple(item.get("groups") or ()),
        )
        for item in items
    )


def find_principals(table: DynamoTable, name: str) -> tuple[DirectoryEntry, ...]:
    """The principals a grant naming `name` may mean: those signed in as `name`, and, for
    `name@tag`, those signed in as `name` through the issuer tagged `tag` (both are
    returned when both exist, so that a look-alike user name is never silently preferred)."""
    found = {e.principal: e for e in principals_named(table, name)}
    base, at, tag = name.rpartition("@")
    if at and base and tag:
        for entry in principals_named(table, base):
            if entry.issuer_tag == tag:
                found.setdefault(entry.principal, entry)
    return tuple(found.values())


def user_names(table: DynamoTable, limit: int) -> tuple[str, ...]:
    """The names users have signed in with, in name order (at most `limit`)."""
    names: dict[str, None] = {}
    for item in table.query(USERS_INDEX_PK, index=GSI1, attributes=[("name",)]):
        names.setdefault(str(item["name"]), None)
        if len(names) >= limit:
            break
    return tuple(names)


def bound_resources(
    table: DynamoTable, subject: str, groups: tuple[str, ...], limit: int
) -> tuple[tuple[str, str, str, tuple[str, ...]], ...]:
    """The experiments and registered models `subject` is bound to, directly or through one of
    `groups`: (kind, id, direct role or "", groups bound). One Query of each index per MB;
    at most `limit`."""
    found = []
    indexes = ((EXPERIMENT, EXPERIMENTS_INDEX_PK, "experiment_id"),
               (REGISTERED_MODEL, REGISTERED_MODELS_INDEX_PK, "name"))  # fmt: skip
    wanted = [("experiment_id",), ("name",), ("lifecycle_stage",), ("renamed_from",), (USERS,),
              (GROUPS,)]  # fmt: skip
    for kind, index_pk, id_name in indexes:
        for item in table.query(index_pk, index=GSI1, attributes=wanted):
            hidden = item.get("lifecycle_stage", "active") != "active" or "renamed_from" in item
            if hidden or id_name not in item:
                continue
            role = (item.get(USERS) or {}).get(subject, "")
            bound = tuple(g for g in groups if g in (item.get(GROUPS) or {}))
            if role or bound:
                found.append((kind, str(item[id_name]), role, bound))
                if len(found) >= limit:
                    return tuple(found)
    return tuple(found)
