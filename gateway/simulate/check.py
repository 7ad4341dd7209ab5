"""`check`: one decision on one resource, with its policies and a reason."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from gateway.authz.datasets import expand_datasets
from gateway.authz.decide import Authorizer, Decision, model_version_context
from gateway.authz.entities import Bindings
from gateway.authz.policies import PolicyBundle
from gateway.routing.model import ALL, ANY
from gateway.routing.parse import ResourceRef
from gateway.simulate.catalog import describe_policy
from gateway.simulate.explain import reason
from store.handler.identity import Principal
from store.vocabulary import (
    DATASET,
    DEFAULT_WORKSPACE,
    EXPERIMENT,
    EXPERIMENT_NAME,
    ISSUE,
    LABEL_SCHEMA,
    LOGGED_MODEL,
    REGISTERED_MODEL,
    REVIEW_QUEUE,
    RUN,
    SCORER,
    TRACE,
    WORKSPACE,
)

# `--resource` prefixes → the gateway's resource kinds
RESOURCE_KINDS = {
    "experiment": EXPERIMENT,
    "model": REGISTERED_MODEL,
    "registered_model": REGISTERED_MODEL,
    "run": RUN,
    "trace": TRACE,
    "logged_model": LOGGED_MODEL,
    "dataset": DATASET,
    "experiment_name": EXPERIMENT_NAME,
    "scorer": SCORER,
    "label_schema": LABEL_SCHEMA,
    "issue": ISSUE,
    "review_queue": REVIEW_QUEUE,
}


def parse_resource(text: str) -> ResourceRef:
    """`experiment:ID`, `model:NAME` (also run:, trace:, logged_model:, dataset:, scorer:,
    label_schema:, issue:, review_queue:), `workspace`."""
    if text == WORKSPACE:
        return ResourceRef(WORKSPACE, DEFAULT_WORKSPACE)
    prefix, sep, ident = text.partition(":")
    if not sep or not ident or prefix not in RESOURCE_KINDS:
        raise ValueError(
            f"resource {text!r}: expected experiment:ID, model:NAME, run:ID, trace:ID, "
            "logged_model:ID, dataset:ID, scorer:ID, label_schema:ID, issue:ID, "
            "review_queue:ID or workspace"
        )
    return ResourceRef(RESOURCE_KINDS[prefix], ident)


@dataclass(frozen=True)
class CheckResult:
    user: str
    groups: tuple[str, ...]
    resource: ResourceRef
    decision: Decision
    reason: str
    bindings: Bindings | None

    @property
    def allowed(self) -> bool:
        return self.decision.allowed


def version_context(
    version: str | None, stage: str | None, aliases: Iterable[str] = ()
) -> dict | None:
    """The Production guard's facts; None when nothing is known (the guard fails closed)."""
    if version is None and stage is None:
        return None
    return model_version_context(version or "", stage or "None", aliases)


def dataset_combine(action: str) -> str:
    """How the gateway combines a dataset's experiments for `action`: ANY for its reads (the
    route tables say so), ALL for everything else."""
    from gateway.routing import all_routes

    for route in all_routes():
        if route.action == action:
            for spec in route.refs:
                if spec.kind == DATASET and spec.combine == ANY:
                    return ANY
    return ALL


def decided_on(
    resource: ResourceRef, action: str, linked: Mapping[str, tuple[str, ...] | None]
) -> tuple[ResourceRef, ...]:
    """What the gateway decides `action` on `resource` on: a dataset is replaced by the
    experiments it is linked to (`linked`: dataset id → experiments), as gateway/pipeline.py
    does; anything else is itself."""
    if resource.kind != DATASET:
        return (resource,)
    ref = ResourceRef(DATASET, resource.id, combine=dataset_combine(action))
    return expand_datasets([ref], linked)


@dataclass(frozen=True)
class _Request:
    action: str
    resources: tuple[ResourceRef, ...]


def run_check(
    bundle: PolicyBundle,
    user: str,
    groups: Iterable[str],
    action: str,
    resource: ResourceRef,
    lookup: Callable[[ResourceRef], object],
    admin_groups: Iterable[str],
    context: Mapping | None = None,
    display: str | None = None,
    linked_datasets: Mapping[str, tuple[str, ...] | None] | None = None,
) -> CheckResult:
    """Decide `action` on `resource` for subject `user`; `display` names the user in the reason.
    `linked_datasets` (dataset id → its experiments) resolves a dataset as the gateway does."""
    groups = tuple(groups)
    admin_groups = tuple(admin_groups)
    principal = Principal(user, user, groups=groups)
    resources = decided_on(resource, action, linked_datasets or {})
    decision = (
        Authorizer(bundle, admin_groups)
        .authorize(principal, _Request(action, resources), lookup, context)
        .decision
    )
    found = _safe_lookup(lookup, decision.resource or resource)  # a dataset: its experiment
    text = reason(decision, user, groups, found, bundle, admin_groups, context, display)
    return CheckResult(display or user, groups, resource, decision, text, found)


def _safe_lookup(lookup, ref: ResourceRef) -> Bindings | None:
    if ref.kind == WORKSPACE:
        return None
    try:
        found = lookup(ref)
    except Exception:  # already reported as the decision's error
        return None
    return found if isinstance(found, Bindings) else None


def render_check(result: CheckResult, bundle: PolicyBundle) -> str:
    d = result.decision
    lines = [
        f"{'ALLOW' if d.allowed else 'DENY'} {d.action} on {_ref(result.resource)}"
        + (f" (decided on {d.target[0]}::{d.target[1]!r})" if d.target else ""),
        f"  principal: {result.user}"
        + (f" in {', '.join(result.groups)}" if result.groups else ""),
    ]
    if d.policy_ids:
        lines.append("  determining policies:")
        lines.extend(f"    {describe_policy(bundle, pid)}" for pid in d.policy_ids)
    else:
        lines.append("  determining policies: none")
    lines.append(f"  reason: {result.reason}")
    if d.errors:
        lines.append("  errors:")
        lines.extend(f"    {e}" for e in d.errors)
    lines.append(f"  policy revision: {d.revision}")
    return "\n".join(lines)


def _ref(ref: ResourceRef) -> str:
    return "the workspace" if ref.kind == WORKSPACE else f"{ref.kind} {ref.id}"
