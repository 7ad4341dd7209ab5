"""The simulator's stand-in principals: one per kind of standing on a resource.

A column is a way of holding (or not holding) a role: none, reader/editor/manager bound
directly or through a group, the same on a private experiment, or membership in an admin
group. Each column is decided on a fresh resource that carries only that one binding, with
the gateway's own entity building and decision code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.authz.decide import Authorizer, Decision, model_version_context
from gateway.authz.entities import Bindings
from gateway.authz.policies import PolicyBundle
from gateway.routing.parse import ResourceRef
from store.handler.identity import Principal
from store.vocabulary import DEFAULT_WORKSPACE, EXPERIMENT, REGISTERED_MODEL, ROLES, WORKSPACE

SUBJECT = "simulated-user"
GROUP = "simulated-group"
SAMPLE_ID = {EXPERIMENT: "1", REGISTERED_MODEL: "model", WORKSPACE: DEFAULT_WORKSPACE}


@dataclass(frozen=True)
class Column:
    key: str  # "none", "reader", "group:editor", "private:manager", "admin", ...
    role: str | None = None
    via_group: bool = False
    private: bool = False
    admin: bool = False

    @property
    def label(self) -> str:
        if self.admin:
            return "admin (member of an admin group)"
        if self.role is None:
            return "no role"
        text = f"{self.role} through a group" if self.via_group else f"{self.role} (direct)"
        return f"{text}, private experiment" if self.private else text

    @property
    def short(self) -> str:
        """A narrow header for the text table: R, gE, pM, pgM, ..."""
        if self.admin or self.role is None:
            return self.key
        code = ("p" if self.private else "") + ("g" if self.via_group else "")
        return code + self.role[0].upper()


def _role_columns() -> list[Column]:
    direct = [Column(r, r) for r in ROLES]
    grouped = [Column(f"group:{r}", r, True) for r in ROLES]
    return direct + grouped


def _private_columns() -> list[Column]:
    # on a private experiment only direct bindings count: one group column shows it
    direct = [Column(f"private:{r}", r, private=True) for r in ROLES]
    return [*direct, Column("private:group:manager", "manager", True, True)]


NONE = Column("none")
ADMIN = Column("admin", admin=True)
COLUMNS: dict[str, tuple[Column, ...]] = {
    WORKSPACE: (NONE, ADMIN),
    EXPERIMENT: (NONE, *_role_columns(), *_private_columns(), ADMIN),
    REGISTERED_MODEL: (NONE, *_role_columns(), ADMIN),
}


@dataclass(frozen=True)
class Cell:
    """One (resource type, action, column) decision."""

    allowed: bool
    policy_ids: tuple[str, ...]
    errors: tuple[str, ...] = ()
    # registry calls: the decision on a version in Production, when it differs
    in_production: bool | None = None

    @property
    def outcome(self) -> str:
        word = "allow" if self.allowed else "deny"
        if self.in_production is not None:
            return f"{word}*"  # footnote: the Production guard decides otherwise
        return word


def sample(
    rtype: str, column: Column, admin_groups: Iterable[str]
) -> tuple[Principal, Bindings | None]:
    """The principal and the resource's bindings that stand for `column`."""
    groups = (next(iter(admin_groups), "admins"),) if column.admin else (GROUP,)
    principal = Principal(SUBJECT, SUBJECT, groups=groups)
    if rtype == WORKSPACE:
        return principal, None
    users = {SUBJECT: column.role} if column.role and not column.via_group else {}
    groups_bound = {GROUP: column.role} if column.role and column.via_group else {}
    data = {"users": users, "groups": groups_bound, "private": column.private}
    return principal, Bindings.from_data(rtype, SAMPLE_ID[rtype], data)


def decide_on(
    bundle: PolicyBundle,
    principal: Principal,
    action: str,
    rtype: str,
    bindings: Bindings | None,
    admin_groups: Iterable[str],
    context: Mapping | None = None,
) -> Decision:
    """One decision on a resource whose bindings are given (not looked up)."""
    ref = ResourceRef(rtype, bindings.id if bindings else SAMPLE_ID[rtype])
    authorizer = Authorizer(bundle, admin_groups)
    return authorizer.decide(principal, action, [ref], lambda _ref: bindings, context)


# The registry facts (gateway/registry_facts.py) of a call that leaves Production alone, and
# of one that touches it in every way the Production guard looks at.
NOT_IN_PRODUCTION = {
    **model_version_context("1", "None"),
    "alias": {"name": "candidate"},
    "transition": {"stage": "Staging", "archiveExistingVersions": False},
    "productionVersions": [],
}
IN_PRODUCTION = {
    **model_version_context("1", "Production", ["champion"]),
    "alias": {
        "name": "champion",
        "target": model_version_context("1", "Production", ["champion"])["modelVersion"],
    },
    "transition": {"stage": "Production", "archiveExistingVersions": True},
    "productionVersions": ["1", "2"],
}


def cell(
    bundle: PolicyBundle, rtype: str, action: str, column: Column, admin_groups: Iterable[str]
) -> Cell:
    admin_groups = tuple(admin_groups)
    principal, bindings = sample(rtype, column, admin_groups)
    if rtype != REGISTERED_MODEL:
        d = decide_on(bundle, principal, action, rtype, bindings, admin_groups)
        return Cell(d.allowed, d.policy_ids, d.errors)
    d = decide_on(bundle, principal, action, rtype, bindings, admin_groups, NOT_IN_PRODUCTION)
    prod = decide_on(bundle, principal, action, rtype, bindings, admin_groups, IN_PRODUCTION)
    differs = prod.allowed != d.allowed
    ids = tuple(dict.fromkeys(d.policy_ids + (prod.policy_ids if differs else ())))
    return Cell(d.allowed, ids, d.errors + prod.errors, prod.allowed if differs else None)
