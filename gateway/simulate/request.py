"""`request`: an HTTP call as the gateway would see it: route, action, resources, decision."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from gateway.decide import Authorizer, RequestDecision, model_version_context
from gateway.policy import PolicyBundle
from gateway.request_parse import ParsedRequest, Refusal, parse_request
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

    @property
    def allowed(self) -> bool:
        return self.result is not None and self.result.allowed

    @property
    def forwarded(self) -> bool:
        """Passed on to MLflow (a search of only unreadable experiments is answered empty)."""
        return self.allowed and not self.result.narrowed_to_nothing


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
        parsed = parse_request(method, split.path, split.query, headers, body)
    except Refusal as refusal:
        return RequestResult(method, target, None, refusal, None, f"REFUSED: {refusal}", None)
    context = None
    if parsed.model_version:
        facts = source.version(*parsed.model_version)
        if facts is not None:
            context = model_version_context(parsed.model_version[1], facts.stage, facts.aliases)
    source.prepare(parsed.resources)
    principal = Principal(user, user, groups=groups)
    result = Authorizer(bundle, admin_groups).authorize(principal, parsed, source.lookup, context)
    decision = result.decision
    if result.narrowed_to_nothing:  # explain the last dropped id, a real denial
        decision = result.decisions[-1]
    bindings = None
    if decision.resource is not None and decision.resource.kind != "workspace":
        found = source.lookup(decision.resource)
        bindings = found if hasattr(found, "cedar_uid") else None
    text = reason(decision, user, groups, bindings, bundle, admin_groups, context, display)
    if result.allowed and parsed.filter == "graphql" and not set(groups) & set(admin_groups):
        # the gateway's own rule (gateway/authorize.py), not a policy
        text = "DENY: the gateway offers GraphQL to administrators only"
        result = RequestDecision(replace(decision, allowed=False), result.decisions)
    elif result.narrowed_to_nothing:
        text = (
            "EMPTY: every experiment the search names is unreadable, so the gateway answers "
            f"with an empty result without calling MLflow ({text})"
        )
    return RequestResult(method, target, parsed, None, result, text, context)


def render_request(r: RequestResult, bundle: PolicyBundle, user: str, groups: Iterable[str]) -> str:
    lines = [f"{r.method.upper()} {r.target}"]
    groups = tuple(groups)
    lines.append(f"  principal: {user}" + (f" in {', '.join(groups)}" if groups else ""))
    if r.refusal is not None:
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
    for d in result.decisions:
        ref = d.resource
        what = f"{ref.kind} {ref.id}" + (f" (as {d.action})" if d.action != parsed.action else "")
        on = f" → {d.target[0]}::{d.target[1]!r}" if d.target else ""
        outcome = "allow" if d.allowed else "deny"
        if ref.narrow:
            outcome += ", kept" if d.allowed else ", dropped from the search"
        policies = f" [{', '.join(d.policy_ids)}]" if d.policy_ids else ""
        problems = f" ({'; '.join(d.errors or (d.note,))})" if d.errors or d.note else ""
        lines.append(f"    {what}{on}: {outcome}{policies}{problems}")
    decision = result.decision
    word = "ALLOW" if result.allowed else "DENY"
    if r.allowed and not r.forwarded:
        word = "EMPTY RESULT (not forwarded)"
    lines.append(f"DECISION: {word}")
    for pid in decision.policy_ids:
        lines.append(f"  policy: {describe_policy(bundle, pid)}")
    lines.append(f"  reason: {r.reason}")
    if parsed.filter and r.forwarded:
        lines.append(
            f"  response filter: {parsed.filter} (only items the caller may read are kept)"
        )
    lines.append(f"  policy revision: {decision.revision}")
    return "\n".join(lines)
