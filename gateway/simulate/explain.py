"""Plain-language reasons: who the caller is on the resource, and who may make the call.

DENY: no policy permits LogMetric; alice is reader on experiment 7; editors may LogMetric
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.authz.decide import Decision
from gateway.authz.entities import Bindings
from gateway.authz.policies import PolicyBundle
from gateway.simulate.catalog import TYPE_LABELS
from gateway.simulate.cells import ADMIN, Column, decide_on, sample
from store.vocabulary import EXPERIMENT, ROLES, WORKSPACE

_PLURAL = {"reader": "readers", "editor": "editors", "manager": "managers"}


@dataclass(frozen=True)
class Standing:
    """What the caller holds on one experiment or registered model."""

    resource: str  # "experiment 7"
    direct: str | None = None
    through_groups: tuple[tuple[str, str], ...] = ()  # (group, role)
    private: bool = False
    admin_group: str | None = None

    def describe(self, user: str) -> str:
        parts: list[str] = []
        if self.admin_group:
            parts.append(f"{user} is an administrator (group {self.admin_group})")
        if self.direct:
            parts.append(f"{user} is {self.direct} on {self.resource}")
        if self.through_groups:
            held = ", ".join(f"{role} through group {g}" for g, role in self.through_groups)
            if self.private:
                parts.append(
                    f"{user} is {held}, but group bindings do not apply: {self.resource} is private"
                )
            else:
                parts.append(f"{user} is {held} on {self.resource}")
        if not self.direct and not self.through_groups and not self.admin_group:
            parts.append(f"{user} has no role on {self.resource}")
        return "; ".join(parts)


def standing(
    user: str, groups: Iterable[str], bindings: Bindings, admin_groups: Iterable[str]
) -> Standing:
    groups = tuple(groups)
    bound = dict(bindings.groups)
    return Standing(
        resource=f"{TYPE_LABELS[bindings.kind]} {bindings.id}",
        direct=dict(bindings.users).get(user),
        through_groups=tuple((g, bound[g]) for g in groups if g in bound),
        private=bindings.private,
        admin_group=next((g for g in groups if g in set(admin_groups)), None),
    )


def who_may(
    bundle: PolicyBundle,
    action: str,
    rtype: str,
    admin_groups: Iterable[str],
    *,
    private: bool = False,
    context: Mapping | None = None,
) -> str:
    """`editors may LogMetric`, `only administrators may ...`, or `no one may ...`."""
    admin_groups = tuple(admin_groups)
    if rtype in TYPE_LABELS and rtype != WORKSPACE:
        for role in ROLES:
            column = Column(role, role, private=private and rtype == EXPERIMENT)
            principal, bindings = sample(rtype, column, admin_groups)
            decision = decide_on(bundle, principal, action, rtype, bindings, admin_groups, context)
            if decision.allowed:
                bound = " bound directly" if column.private else ""
                return f"{_PLURAL[role]}{bound} may {action}"
    principal, bindings = sample(rtype, ADMIN, admin_groups)
    if (
        admin_groups
        and decide_on(bundle, principal, action, rtype, bindings, admin_groups, context).allowed
    ):
        return f"only administrators may {action}"
    return f"no one may {action}"


def reason(
    decision: Decision,
    user: str,
    groups: Iterable[str],
    bindings: Bindings | None,
    bundle: PolicyBundle,
    admin_groups: Iterable[str],
    context: Mapping | None = None,
    display: str | None = None,
) -> str:
    """One sentence for people: the decision, the policies behind it, the caller's standing."""
    word = "ALLOW" if decision.allowed else "DENY"
    action = decision.action
    if decision.target is None:  # decided before the policies: missing or unresolvable
        detail = decision.note or "; ".join(decision.errors) or "the request names no resource"
        tail = (
            "MLflow answers it" if decision.allowed else "the gateway denies what it cannot resolve"
        )
        return f"{word}: {detail} ({tail})"
    ids = ", ".join(decision.policy_ids)
    about = ""
    if bindings is not None:
        about = standing(user, groups, bindings, admin_groups).describe(display or user)
    if decision.errors:
        return f"DENY: evaluating the policies failed ({'; '.join(decision.errors)})"
    if decision.allowed:
        verb = "permits" if len(decision.policy_ids) == 1 else "permit"
        return "; ".join(p for p in (f"ALLOW: {ids} {verb} {action}", about) if p)
    rtype = bindings.kind if bindings else WORKSPACE
    private = bool(bindings and bindings.private)
    if decision.policy_ids:
        verb = "forbids" if len(decision.policy_ids) == 1 else "forbid"
        parts = [f"DENY: {ids} {verb} {action}", about]
    else:
        parts = [f"DENY: no policy permits {action}", about]
    parts.append(who_may(bundle, action, rtype, admin_groups, private=private, context=context))
    return "; ".join(p for p in parts if p)
