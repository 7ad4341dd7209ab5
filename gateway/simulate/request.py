"""`request`: an HTTP call as the gateway would see it: route, action, resources, decision.

The gateway's own steps after the policy decision are taken here with the gateway's code:
a GraphQL query from a non-administrator is decided per root field (graphql_check.py), a
search narrowed to nothing is answered empty, and `GET /metrics` is the `GetMetrics` call.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.authz.decide import Authorizer, Decision, RequestDecision
from gateway.authz.policies import PolicyBundle
from gateway.authz.registry_facts import registry_context
from gateway.observe.audit import recorded_decision
from gateway.observe.metrics import metrics_request
from gateway.routing.graphql import check_graphql, graphql_request_refs, parse_graphql_request
from gateway.routing.parse import ParsedRequest, Refusal, parse_request
from gateway.simulate.catalog import describe_policy
from gateway.simulate.explain import reason
from gateway.simulate.sources import BindingsSource
from store.identity import Principal


@dataclass(frozen=True)
class RequestResult:
    method: str
    target: str
    parsed: ParsedRequest | None
    refusal: Refusal | None
    result: RequestDecision | None
    reason: str
    context: dict | None
    graphql: tuple[Decision, ...] = ()  # a non-administrator's query, decided per root field

    @property
    def allowed(self) -> bool:
        """As the gateway's audit line records it: a search of only unreadable experiments
        (answered empty, never forwarded) is a denial."""
        r = self.result
        return self.refusal is None and r is not None and r.allowed and not r.narrowed_to_nothing

    @property
    def forwarded(self) -> bool:
        """Passed on to MLflow."""
        return self.allowed


def simulate_request(
    bundle: PolicyBundle,
    source: BindingsSource,
    user: str,
    groups: Iterable[str],
    method: str,
    target: str,
    body: str | bytes = b"",
    admin_groups: Iterable[str] = ("admins",),
    headers: Mapping[str, str] | None = None,
    display: str | None = None,
) -> RequestResult:
    """Route, parse, resolve and decide one request exactly as the gateway does."""
    groups = tuple(groups)
    admin_groups = tuple(admin_groups)
    body = body.encode() if isinstance(body, str) else body
    split = urlsplit(target)
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    if body.strip():
        headers.setdefault("content-type", "application/json")
    try:
        parsed = metrics_request(method, split.path) or parse_request(
            method, split.path, split.query, headers, body
        )
    except Refusal as refusal:
        return RequestResult(method, target, None, refusal, None, f"REFUSED: {refusal}", None)
    context = registry_context(parsed, source)
    source.prepare(parsed.resources)
    principal = Principal(user, user, groups=groups)
    authorizer = Authorizer(bundle, admin_groups)
    result = authorizer.authorize(principal, parsed, source.lookup, context)
    decision = recorded_decision(result)  # a search narrowed to nothing: its last denial
    explain = _Explainer(bundle, source, user, groups, admin_groups, context, display)
    text = explain(decision)
    if result.allowed and parsed.filter == "graphql" and set(groups) & set(admin_groups):
        try:  # an administrator's query is not decided per field, only read (as the gateway)
            parse_graphql_request(method, body)
        except Refusal as refusal:
            return RequestResult(
                method, target, parsed, refusal, result, f"REFUSED: {refusal}", context
            )
    elif result.allowed and parsed.filter == "graphql":
        try:
            refs = graphql_request_refs(method, body)
        except Refusal as refusal:
            return RequestResult(
                method, target, parsed, refusal, result, f"REFUSED: {refusal}", context
            )
        source.prepare(refs)
        check = check_graphql(authorizer, principal, refs, source.lookup)
        if check.denied is not None:
            text = explain(check.denied)
            result = RequestDecision(check.denied, result.decisions)
        else:
            text += f"; the query reads {len(refs)} resource(s), each allowed"
        return RequestResult(method, target, parsed, None, result, text, context, check.decisions)
    if result.narrowed_to_nothing:
        text = (
            "EMPTY: every experiment the search names is unreadable, so the gateway answers "
            f"with an empty result without calling MLflow ({text})"
        )
    return RequestResult(method, target, parsed, None, result, text, context)


@dataclass(frozen=True)
class _Explainer:
    """The plain-language reason for one decision, with the caller's standing on it."""

    bundle: PolicyBundle
    source: BindingsSource
    user: str
    groups: tuple[str, ...]
    admin_groups: tuple[str, ...]
    context: dict | None
    display: str | None

    def __call__(self, decision: Decision) -> str:
        bindings = None
        if decision.resource is not None and decision.resource.kind != "workspace":
            found = self.source.lookup(decision.resource)
            bindings = found if hasattr(found, "cedar_uid") else None
        return reason(
            decision,
            self.user,
            self.groups,
            bindings,
            self.bundle,
            self.admin_groups,
            self.context,
            self.display,
        )


def render_request(r: RequestResult, bundle: PolicyBundle, user: str, groups: Iterable[str]) -> str:
    lines = [f"{r.method.upper()} {r.target}"]
    groups = tuple(groups)
    lines.append(f"  principal: {user}" + (f" in {', '.join(groups)}" if groups else ""))
    if r.refusal is not None and r.parsed is None:
        lines.append(f"  REFUSED before any decision: {r.refusal}")
        return "\n".join(lines)
    parsed, result = r.parsed, r.result
    lines.append(f"  route: {parsed.route.describe()}")
    if parsed.route.anonymous:
        lines.append("  (served without a caller identity too)")
    lines.append(f"  action: {parsed.action}")
    if r.context:
        lines.append(f"  context: {json.dumps(r.context)}")
    lines.append("  resources:")
    lines.extend(f"    {_line(d, parsed.action)}" for d in result.decisions)
    if r.refusal is not None:  # a GraphQL query the gateway does not read
        lines.append(f"DECISION: REFUSED ({r.refusal})")
        return "\n".join(lines)
    if r.graphql:
        lines.append("  GraphQL root fields (decided per resource, up to the first denial):")
        lines.extend(f"    {_line(d, parsed.action)}" for d in r.graphql)
    decision = recorded_decision(result)
    word = "ALLOW" if r.allowed else "DENY"
    if result.narrowed_to_nothing:
        word = "DENY: EMPTY RESULT (not forwarded)"
    lines.append(f"DECISION: {word}")
    for pid in decision.policy_ids:
        lines.append(f"  policy: {describe_policy(bundle, pid)}")
    lines.append(f"  reason: {r.reason}")
    if parsed.filter and parsed.filter != "graphql" and r.forwarded:  # GraphQL: per field
        lines.append(
            f"  response filter: {parsed.filter} (only items the caller may read are kept)"
        )
    lines.append(f"  policy revision: {decision.revision}")
    return "\n".join(lines)


def _line(d: Decision, action: str) -> str:
    """`run r1 (as GetRun) → Experiment::'7': allow [experiment-reader]`."""
    ref = d.resource
    what = f"{ref.kind} {ref.id}" + (f" (as {d.action})" if d.action != action else "")
    on = f" → {d.target[0]}::{d.target[1]!r}" if d.target else ""
    outcome = "allow" if d.allowed else "deny"
    if ref.narrow:
        outcome += ", kept" if d.allowed else ", dropped from the search"
    policies = f" [{', '.join(d.policy_ids)}]" if d.policy_ids else ""
    problems = f" ({'; '.join(d.errors or (d.note,))})" if d.errors or d.note else ""
    return f"{what}{on}: {outcome}{policies}{problems}"
