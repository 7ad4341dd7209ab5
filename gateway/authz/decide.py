"""Decisions: may this caller make this call on every resource it touches?

    authorizer = Authorizer(PolicyStore("policies"), admin_groups=("admins",))
    result = authorizer.authorize(principal, parse_request(...), lookup)   # whole request
    decision = authorizer.decide(principal, "GetRun", [ResourceRef("run", id)], lookup)
    decisions = authorizer.decide_each(principal, "GetRun", refs, lookup)  # one per reference

`lookup(ref)` returns the role bindings of the experiment or registered model a reference
belongs to (a run's experiment, a model version's model), MISSING when it does not exist,
or None when it cannot be resolved. Unresolvable and missing references are denials
(403, not 404: no existence oracle), except a reference marked `missing_ok`. Every
reference must be allowed; any evaluation error is a denial too (an erroring forbid would
otherwise be skipped).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import cedarpy

from gateway.authz.entities import CEDAR_TYPE, WORKSPACE_UID, Bindings, cached_entities
from gateway.authz.policies import PolicyBundle, PolicyStore
from gateway.routing.parse import ParsedRequest, ResourceRef
from store.vocabulary import REGISTERED_MODEL, WORKSPACE


class _Missing:
    """Returned by a lookup for a resource that does not exist (as opposed to None: unknown)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()
BindingsLookup = Callable[[ResourceRef], "Bindings | _Missing | None"]


class PrincipalLike(Protocol):
    subject: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    action: str  # the action decided for `resource` (a reference may carry its own)
    resource: ResourceRef | None  # the deciding reference: the first denied, else the last
    policy_ids: tuple[str, ...]  # determining policies (@id): permits on allow, forbids on deny
    errors: tuple[str, ...]
    revision: str  # policy-set revision
    target: tuple[str, str] | None = None  # Cedar (type, id) the reference was decided on
    note: str = ""  # why a decision was made without the policies (e.g. "does not exist")


@dataclass(frozen=True)
class RequestDecision:
    """A parsed request decided: forward it (with only `kept` narrowed ids) or refuse it."""

    decision: Decision  # the overall decision, for the audit line and the 403 message
    decisions: tuple[Decision, ...]  # one per referenced resource
    kept: tuple[ResourceRef, ...] = ()  # narrowable ids the caller may read: forward these
    dropped: tuple[ResourceRef, ...] = ()  # narrowable ids removed before forwarding

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    @property
    def narrowed_to_nothing(self) -> bool:
        """Every id of a search was dropped: answer with an empty result, do not forward."""
        return bool(self.dropped) and not self.kept


def model_version_context(version: str, stage: str, aliases: Iterable[str] = ()) -> dict:
    """Context for registry calls on one version (read by the Production guard)."""
    return {"modelVersion": {"version": str(version), "stage": stage, "aliases": list(aliases)}}


@dataclass(frozen=True)
class _Verdict:
    """What Cedar answered for one request, independent of which reference asked."""

    allowed: bool
    policy_ids: tuple[str, ...]
    errors: tuple[str, ...]


def _verdict(result) -> _Verdict:
    diagnostics = result.diagnostics
    errors = tuple(str(e) for e in diagnostics.errors)
    if result.decision == cedarpy.Decision.NoDecision and not errors:
        errors = ("no decision: the request does not match the schema",)
    return _Verdict(
        allowed=result.decision == cedarpy.Decision.Allow and not errors,
        policy_ids=tuple(sorted(diagnostics.reasons)),
        errors=errors,
    )


class _VerdictCache:
    """Cedar's answers, keyed by everything that goes into them.

    The key holds the policy-set revision (a content hash), the caller, its groups, the
    admin groups, every role binding in the entity set, the action, the resource and the
    context: the same key always gets the same answer from Cedar, so a hit is exact. A
    training loop's repeated `LogMetric` is then decided without calling Cedar at all.
    """

    def __init__(self, size: int = 20_000):
        self._size = size
        self._entries: OrderedDict[tuple, _Verdict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> _Verdict | None:
        with self._lock:
            verdict = self._entries.get(key)
            if verdict is not None:
                self._entries.move_to_end(key)
            return verdict

    def put(self, key: tuple, verdict: _Verdict) -> None:
        with self._lock:
            self._entries[key] = verdict
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)


_VERDICTS = _VerdictCache()


@dataclass(frozen=True)
class _Plan:
    ref: ResourceRef
    action: str
    uid: dict | None = None  # the Cedar resource to ask about
    bindings: Bindings | None = None
    outcome: Decision | None = None  # decided without Cedar (unresolvable, missing)


def _plan(ref: ResourceRef, action: str, lookup: BindingsLookup, revision: str) -> _Plan:
    action = ref.action or action
    if ref.kind == WORKSPACE:
        return _Plan(ref, action, WORKSPACE_UID)
    try:
        bindings = lookup(ref)
    except Exception as exc:  # a failed lookup is a denial, never an allow
        bindings, problem = None, f"cannot resolve {ref.kind} {ref.id!r}: {exc}"
    else:
        problem = f"cannot resolve {ref.kind} {ref.id!r}"
    if bindings is MISSING and ref.missing_ok:  # forwarded: MLflow answers 404
        note = f"{ref.kind} {ref.id!r} does not exist"
        return _Plan(ref, action, outcome=Decision(True, action, ref, (), (), revision, None, note))
    if bindings is MISSING:
        problem = f"no {ref.kind} {ref.id!r}"
    if not isinstance(bindings, Bindings):
        return _Plan(ref, action, outcome=Decision(False, action, ref, (), (problem,), revision))
    return _Plan(ref, action, bindings.cedar_uid, bindings)


def _decision(verdict: _Verdict, plan: _Plan, revision: str) -> Decision:
    return Decision(
        allowed=verdict.allowed,
        action=plan.action,
        resource=plan.ref,
        policy_ids=verdict.policy_ids,
        errors=verdict.errors,
        revision=revision,
        target=(plan.uid["type"], plan.uid["id"]),
    )


class Authorizer:
    """Decisions against the policy set in force (a PolicyStore hot-reloads it; a PolicyBundle
    is one fixed set, as the simulator uses)."""

    def __init__(
        self, store: PolicyStore | PolicyBundle, admin_groups: Iterable[str] = ("admins",)
    ):
        self.store = store
        self.admin_groups = tuple(admin_groups)

    @property
    def policies(self) -> PolicyBundle:
        return self.store.current if isinstance(self.store, PolicyStore) else self.store

    def decide(
        self,
        principal: PrincipalLike,
        action: str,
        resources: Sequence[ResourceRef],
        bindings_lookup: BindingsLookup,
        context: Mapping | None = None,
    ) -> Decision:
        """One decision for the whole request: allowed only if every reference is allowed."""
        policies = self.policies
        if not resources:
            problem = ("the request names no resource",)
            return Decision(False, action, None, (), problem, policies.revision)
        decisions = self.decide_each(principal, action, resources, bindings_lookup, context)
        denied = next((d for d in decisions if not d.allowed), None)
        return denied or _allowed(action, decisions, decisions[-1])

    def authorize(
        self,
        principal: PrincipalLike,
        parsed: ParsedRequest,
        bindings_lookup: BindingsLookup,
        context: Mapping | None = None,
    ) -> RequestDecision:
        """Decide a whole request: every reference must allow, except narrowable ones
        (a search's experiment ids), which are kept or dropped one by one, and references
        sharing an `any_of` key (a dataset's experiments on a read), of which one must."""
        decisions = self.decide_each(
            principal, parsed.action, parsed.resources, bindings_lookup, context
        )
        kept = tuple(d.resource for d in decisions if d.resource.narrow and d.allowed)
        dropped = tuple(d.resource for d in decisions if d.resource.narrow and not d.allowed)
        strict = [d for d in decisions if not d.resource.narrow]
        denied = next((d for d in strict if not d.allowed and d.resource.any_of is None), None)
        denied = denied or _group_denial(strict)
        if denied is not None:
            return RequestDecision(denied, decisions, kept, dropped)
        allowed = [d for d in decisions if d.allowed]
        last = (strict or allowed or list(decisions))[-1]
        return RequestDecision(_allowed(parsed.action, allowed, last), decisions, kept, dropped)

    def decide_each(
        self,
        principal: PrincipalLike,
        action: str,
        resources: Sequence[ResourceRef],
        bindings_lookup: BindingsLookup,
        context: Mapping | None = None,
    ) -> tuple[Decision, ...]:
        """One decision per reference, in order (for narrowing searches and filtering lists)."""
        policies, admin_groups = self.policies, self.admin_groups
        plans = [_plan(ref, action, bindings_lookup, policies.revision) for ref in resources]
        targets = tuple(dict.fromkeys(p.bindings for p in plans if p.bindings is not None))
        subject, groups = principal.subject, tuple(principal.groups)
        context_key = json.dumps(context, sort_keys=True, default=repr) if context else ""
        keys = {
            i: (policies.revision, subject, groups, admin_groups, targets, p.action,
                p.uid["type"], p.uid["id"], context_key if _is_model(p) else "")
            for i, p in enumerate(plans)
            if p.outcome is None
        }  # fmt: skip
        verdicts = {i: _VERDICTS.get(key) for i, key in keys.items()}
        todo = [i for i, verdict in verdicts.items() if verdict is None]
        if todo:
            entities = cached_entities(subject, groups, targets, admin_groups)
            requests = [_cedar_request(subject, plans[i], context) for i in todo]
            results = cedarpy.is_authorized_batch(
                requests, policies.policy_set, entities, policies.schema
            )
            for i, result in zip(todo, results, strict=True):
                verdicts[i] = _verdict(result)
                _VERDICTS.put(keys[i], verdicts[i])
        return tuple(
            p.outcome or _decision(verdicts[i], p, policies.revision) for i, p in enumerate(plans)
        )


def _group_denial(decisions: Sequence[Decision]) -> Decision | None:
    """The first denial of a group of references of which none was allowed (`any_of`)."""
    groups: dict[str, list[Decision]] = {}
    for decision in decisions:
        if decision.resource.any_of is not None:
            groups.setdefault(decision.resource.any_of, []).append(decision)
    for members in groups.values():
        if not any(d.allowed for d in members):
            return members[0]
    return None


def _allowed(action: str, allowed: Sequence[Decision], last: Decision) -> Decision:
    """The allow of a request whose references were all allowed: every policy that permitted."""
    ids = tuple(dict.fromkeys(i for d in allowed for i in d.policy_ids))
    note = "; ".join(d.note for d in allowed if d.note)
    return Decision(True, action, last.resource, ids, (), last.revision, last.target, note)


def _cedar_request(subject: str, plan: _Plan, context: Mapping | None) -> dict:
    return {
        "principal": {"type": "User", "id": subject},
        "action": {"type": "Action", "id": plan.action},
        "resource": plan.uid,
        # only registry calls declare a context (the model version's facts)
        "context": dict(context or {}) if _is_model(plan) else {},
    }


def _is_model(plan: _Plan) -> bool:
    return plan.uid["type"] == CEDAR_TYPE[REGISTERED_MODEL]
