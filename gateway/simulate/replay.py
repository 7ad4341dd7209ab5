"""`replay`: the gateway's recorded decisions decided again with another policy set.

Audit lines (gateway/observe/audit.py) are JSON objects; decision lines have `"type": "decision"`
and the fields `time`, `request_id`, `principal` (subject), `username`, `groups`,
`action`, `resource` ({kind, id}), `decided_on` ([Cedar type, id]), `decision`
("allow" | "deny"), `policies`, `errors`, `note` and `policy_revision`. A line is decided
again on the experiment or registered model it was decided on, with the bindings that
hold now; lines decided without the policies (a missing or unresolvable resource) are
counted as skipped. A registry call whose outcome depends on the model version's stage
(unknown to the audit line) is only reported when no stage would give the recorded
decision. A narrowed search (`kept` and `dropped` experiment ids, see gateway/observe/audit.py) is
replayed once per experiment: each kept id as an allow, each dropped one as a deny, so an
edit that would let the search read a dropped experiment shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from gateway.authz.entities import KIND_OF_CEDAR_TYPE
from gateway.authz.policies import PolicyBundle
from gateway.routing.parse import ResourceRef
from gateway.simulate.catalog import Catalog, catalog, describe_policy
from gateway.simulate.cells import IN_PRODUCTION, NOT_IN_PRODUCTION
from gateway.simulate.check import run_check
from gateway.simulate.inputs import InputError, Location
from gateway.simulate.sources import BindingsSource
from store.vocabulary import DEFAULT_WORKSPACE, EXPERIMENT, REGISTERED_MODEL, WORKSPACE


@dataclass(frozen=True)
class Recorded:
    where: Location
    time: str
    request_id: str
    subject: str
    username: str
    groups: tuple[str, ...]
    action: str
    resource: ResourceRef  # what the decision was made on (experiment, model, workspace)
    allowed: bool
    policy_ids: tuple[str, ...]
    revision: str


@dataclass(frozen=True)
class Flip:
    line: Recorded
    now_allowed: bool
    now_policy_ids: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class ReplayReport:
    replayed: int
    skipped: int
    undetermined: int  # depends on a model version's stage; recorded decision still possible
    flips: tuple[Flip, ...]


def read_audit(path: str | Path) -> Iterator[Recorded | None]:
    """Each decision line, or None for a decision line made without the policies."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(Location(str(path)), f"cannot read: {exc}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = Location(str(path), number, 1)
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(Location(str(path), number, exc.colno), exc.msg) from None
            if not isinstance(record, dict):
                raise InputError(where, "an audit line must be a JSON object")
            if record.get("type", "decision") != "decision":
                continue  # binding changes and other records
            yield from _recorded(record, where)


def _recorded(record: dict, where: Location) -> list[Recorded | None]:
    main = _main_decision(record, where)
    if main is None:
        return [None]
    narrowed = [(i, True) for i in _ids(record, "kept", where)]
    narrowed += [(i, False) for i in _ids(record, "dropped", where)]
    others = [
        replace(
            main,
            resource=ResourceRef(EXPERIMENT, i),
            allowed=allowed,
            policy_ids=main.policy_ids if allowed else (),
        )
        for i, allowed in narrowed
        if main.resource != ResourceRef(EXPERIMENT, i)
    ]
    return [main, *others]


def _ids(record: dict, field: str, where: Location) -> list[str]:
    ids = record.get(field) or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InputError(where, f"{field!r} must be a list of experiment ids")
    return ids


def _main_decision(record: dict, where: Location) -> Recorded | None:
    try:
        decided_on = record.get("decided_on")
        if not decided_on:
            return None
        allowed = str(record["decision"]).lower() == "allow"
        if allowed and not record.get("policies") and "narrowed_from" not in record:
            return None  # older lines: a search whose every experiment was dropped
        cedar_type, resource_id = decided_on
        kind = KIND_OF_CEDAR_TYPE.get(cedar_type)
        if kind is None:
            raise InputError(where, f"decided_on names an unknown type {cedar_type!r}")
        ref = ResourceRef(kind, DEFAULT_WORKSPACE if kind == WORKSPACE else str(resource_id))
        return Recorded(
            where=where,
            time=str(record.get("time", "")),
            request_id=str(record.get("request_id", "")),
            subject=str(record["principal"]),
            username=str(record.get("username") or record["principal"]),
            groups=tuple(record.get("groups") or ()),
            action=str(record["action"]),
            resource=ref,
            allowed=allowed,
            policy_ids=tuple(record.get("policies") or ()),
            revision=str(record.get("policy_revision", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(where, f"not a decision line: missing or malformed {exc}") from None


def replay(
    lines: Iterable[Recorded | None],
    bundle: PolicyBundle,
    source: BindingsSource,
    admin_groups: Iterable[str],
    actions: Catalog | None = None,
) -> ReplayReport:
    admin_groups = tuple(admin_groups)
    actions = actions or catalog(bundle)
    replayed = skipped = undetermined = 0
    flips: list[Flip] = []
    for line in lines:
        # an action decided on another type than its own (a per-reference check recorded
        # under the request's action) cannot be asked again as such
        if line is None or actions.resource_type(line.action) != line.resource.kind:
            skipped += 1
            continue
        replayed += 1
        contexts = [None]
        if line.resource.kind == REGISTERED_MODEL:
            contexts = [NOT_IN_PRODUCTION, IN_PRODUCTION]
        results = [
            run_check(
                bundle,
                line.subject,
                line.groups,
                line.action,
                line.resource,
                source.lookup,
                admin_groups,
                context,
                display=line.username,
            )
            for context in contexts
        ]
        if any(r.decision.target is None for r in results):  # the resource is gone now
            replayed -= 1
            skipped += 1
            continue
        outcomes = {r.allowed for r in results}
        if line.allowed in outcomes:
            undetermined += len(outcomes) > 1
            continue
        now = results[0]
        flips.append(Flip(line, now.allowed, now.decision.policy_ids, now.reason))
    return ReplayReport(replayed, skipped, undetermined, tuple(flips))


def render_replay(report: ReplayReport, bundle: PolicyBundle) -> str:
    lines = []
    for f in report.flips:
        r = f.line
        was = "ALLOW" if r.allowed else "DENY"
        now = "ALLOW" if f.now_allowed else "DENY"
        lines.append(
            f"{r.where}: {r.time} {r.request_id} {r.username} {r.action} on "
            f"{r.resource.kind} {r.resource.id}: {was} -> {now}"
        )
        if r.policy_ids:
            lines.append(f"    recorded: {', '.join(r.policy_ids)} (revision {r.revision})")
        if f.now_policy_ids:
            lines.append(
                "    now: " + ", ".join(describe_policy(bundle, p) for p in f.now_policy_ids)
            )
        lines.append(f"    {f.reason}")
    lines.append(
        f"{report.replayed} decision(s) replayed against revision {bundle.revision}: "
        f"{len(report.flips)} would change, {report.skipped} skipped (not decided by the "
        f"policies, or the resource is gone), {report.undetermined} depend on a model "
        "version's stage"
    )
    return "\n".join(lines)
