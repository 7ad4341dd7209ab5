"""`diff`: every (role, action, resource type) whose decision differs between two policy
sets, and the policies that make the difference."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.authz.policies import PolicyBundle
from gateway.simulate.catalog import TYPE_LABELS, describe_policy
from gateway.simulate.cells import COLUMNS, Cell
from gateway.simulate.matrix import Matrix

_ABSENT = Cell(False, (), ("the action is not in this schema",))


@dataclass(frozen=True)
class Change:
    rtype: str
    action: str
    column: str
    before: Cell
    after: Cell

    @property
    def label(self) -> str:
        found = {c.key: c.label for c in COLUMNS[self.rtype]}
        return found.get(self.column, self.column)


def diff_matrices(base: Matrix, head: Matrix) -> list[Change]:
    changes = []
    keys = list(base.cells) + [k for k in head.cells if k not in base.cells]
    for key in keys:
        before, after = base.cells.get(key, _ABSENT), head.cells.get(key, _ABSENT)
        if (before.allowed, before.in_production) != (after.allowed, after.in_production):
            changes.append(Change(*key, before, after))
    return changes


def causes(change: Change, base: PolicyBundle, head: PolicyBundle) -> list[str]:
    """The policies behind the change, said the way a reviewer reads them."""
    out = []
    before, after = set(change.before.policy_ids), set(change.after.policy_ids)
    for pid in sorted(after - before):
        effect = _effect(head, pid)
        out.append(
            f"now {'forbidden' if effect == 'forbid' else 'permitted'} by "
            f"{describe_policy(head, pid)}"
        )
    for pid in sorted(before - after):
        effect = _effect(base, pid)
        out.append(
            f"no longer {'forbidden' if effect == 'forbid' else 'permitted'} by "
            f"{describe_policy(base, pid)}"
        )
    if not out:
        ids = sorted(before | after)
        out.append(
            "decided by " + ", ".join(describe_policy(head, p) for p in ids)
            if ids
            else "no policy applies any more"
        )
    return out


def _effect(bundle: PolicyBundle, pid: str) -> str:
    source = bundle.sources.get(pid)
    return source.effect if source else "permit"


def render_diff(
    changes: list[Change], base: PolicyBundle, head: PolicyBundle, base_name: str, head_name: str
) -> str:
    lines = [
        f"base: {base_name} (revision {base.revision})",
        f"head: {head_name} (revision {head.revision})",
    ]
    if not changes:
        lines.append("no decision changes")
        return "\n".join(lines)
    for c in changes:
        lines.append(
            f"{TYPE_LABELS[c.rtype]} {c.action}, {c.label}: "
            f"{c.before.outcome.upper()} -> {c.after.outcome.upper()}"
        )
        lines.extend(f"    {text}" for text in causes(c, base, head))
    actions = {(c.rtype, c.action) for c in changes}
    lines.append(f"{len(changes)} changed cell(s) in {len(actions)} action(s)")
    if any(
        c.before.in_production is not None or c.after.in_production is not None for c in changes
    ):
        lines.append("* the decision differs for a model version in Production")
    return "\n".join(lines)
