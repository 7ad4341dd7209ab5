"""`request`: an HTTP call as the gateway would see it, decided by the gateway's own pipeline.

gateway/pipeline.py's `Pipeline.decide` runs here on the simulator's facts (a bindings file or
the table): the same routing, parsing, resolution, decision, model-reader rule, GraphQL check
per root field and narrowing as in the gateway; nothing is forwarded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.authz.decide import Authorizer, Decision, RequestDecision
from gateway.authz.policies import PolicyBundle
from gateway.errors import GatewayError
from gateway.filters import GRAPHQL
from gateway.observe.audit import recorded_decision
from gateway.pipeline import Call, Pipeline, Verdict
from gateway.routing.model import OPEN
from gateway.routing.parse import ParsedRequest
from gateway.simulate.catalog import describe_policy
from gateway.simulate.explain import reason
from gateway.simulate.sources import BindingsSource
from store.handler.identity import Principal
from store.vocabulary import WORKSPACE

_EMPTY_SEARCH = (
    "the search sends an empty list of experiments; MLflow answers it with no rows, and so "
    "does the gateway, without calling MLflow"
)


@dataclass(frozen=True)
class RequestResult:
    method: str
    target: str
    verdict: Verdict
    reason: str

    @property
    def parsed(self) -> ParsedRequest | None:
        return self.verdict.parsed

    @property
    def refusal(self) -> GatewayError | None:
        return self.verdict.refusal

    @property
    def result(self) -> RequestDecision | None:
        return self.verdict.result

    @property
    def context(self) -> dict | None:
        return self.verdict.context

    @property
    def graphql(self) -> tuple[Decision, ...]:
        return self.verdict.graphql

    @property
    def allowed(self) -> bool:
        """As the gateway's audit line records it: a search of only unreadable experiments
        (answered empty, never forwarded) is a denial."""
        return self.verdict.allowed

    @property
    def forwarded(self) -> bool:
        """Passed on to MLflow (or, for the gateway's own decided calls, answered)."""
        return self.verdict.allowed


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
    groups, admin_groups = tuple(groups), tuple(admin_groups)
    body = body.encode() if isinstance(body, str) else body
    split = urlsplit(target)
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    if body.strip():
        headers.setdefault("content-type", "application/json")
    pipeline = Pipeline(Authorizer(bundle, admin_groups), source)
    call = Call(method.upper(), split.path, split.query, headers, body)
    verdict = asyncio.run(pipeline.decide(call, Principal(user, user, groups=groups)))
    explain = _Explainer(bundle, verdict, user, groups, admin_groups, display)
    return RequestResult(method, target, verdict, explain.text())


@dataclass(frozen=True)
class _Explainer:
    """The plain-language reason for a verdict, with the caller's standing on it."""

    bundle: PolicyBundle
    verdict: Verdict
    user: str
    groups: tuple[str, ...]
    admin_groups: tuple[str, ...]
    display: str | None

    def text(self) -> str:
        v = self.verdict
        if v.undecided is not None:
            who = "without credentials" if v.undecided.serve == OPEN else "deciding each call"
            return f"NOT DECIDED HERE: {v.undecided.action} is answered by the gateway {who}"
        if v.empty_search and v.refusal is None:
            return f"EMPTY: {_EMPTY_SEARCH}"
        if v.result is None:
            return f"REFUSED: {v.refusal}"
        if v.refusal is not None:  # a GraphQL query the gateway does not read
            return f"REFUSED: {v.refusal}"
        denial = v.denial
        if denial is not None and v.graphql:
            return self._reason(denial)
        text = self._reason(recorded_decision(v.result))  # narrowed to nothing: its last denial
        if v.graphql:
            return text + f"; the query reads {len(v.graphql)} resource(s), each allowed"
        if v.answered_empty:
            return (
                "EMPTY: every experiment the search names is unreadable, so the gateway answers "
                f"with an empty result without calling MLflow ({text})"
            )
        return text

    def _reason(self, decision: Decision) -> str:
        bindings = None
        if decision.resource is not None and decision.resource.kind != WORKSPACE:
            found = self.verdict.lookup(decision.resource) if self.verdict.lookup else None
            bindings = found if hasattr(found, "cedar_uid") else None
        return reason(
            decision,
            self.user,
            self.groups,
            bindings,
            self.bundle,
            self.admin_groups,
            self.verdict.context,
            self.display,
        )


def render_request(r: RequestResult, bundle: PolicyBundle, user: str, groups: Iterable[str]) -> str:
    lines = [f"{r.method.upper()} {r.target}"]
    groups = tuple(groups)
    lines.append(f"  principal: {user}" + (f" in {', '.join(groups)}" if groups else ""))
    if r.verdict.undecided is not None:
        lines.append(f"  route: {r.verdict.undecided.describe()}")
        lines.append(f"DECISION: {r.reason}")
        return "\n".join(lines)
    if r.verdict.empty_search and r.refusal is None:
        lines.append(f"  route: {r.parsed.route.describe()}")
        lines.append(f"DECISION: EMPTY RESULT (not forwarded): {_EMPTY_SEARCH}")
        return "\n".join(lines)
    if r.refusal is not None and r.parsed is None:
        lines.append(f"  REFUSED before any decision: {r.refusal}")
        return "\n".join(lines)
    parsed, result = r.parsed, r.result
    lines.append(f"  route: {parsed.route.describe()}")
    if parsed.route.anonymous:
        lines.append("  (the gateway also forwards it without a caller identity or a decision)")
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
    decision = r.verdict.denial or recorded_decision(result)
    word = "ALLOW" if r.allowed else "DENY"
    if result.narrowed_to_nothing:
        word = "DENY: EMPTY RESULT (not forwarded)"
    lines.append(f"DECISION: {word}")
    for pid in decision.policy_ids:
        lines.append(f"  policy: {describe_policy(bundle, pid)}")
    lines.append(f"  reason: {r.reason}")
    if parsed.filter and parsed.filter != GRAPHQL and r.forwarded:  # GraphQL: per field
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
