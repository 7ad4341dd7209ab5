"""Policy test files: named inputs with the decision they must get (`test FILE...`).

policies: ..                # optional: the policy folder, relative to this file
admin_groups: [admins]      # optional
bindings:                   # the bindings file format, inline (or a file name)
  experiments: {"1": {users: {rita: reader}}}
cases:
  - name: readers read runs
    user: rita
    groups: [nlp]
    action: GetRun
    resource: experiment:1  # experiment:ID, model:NAME, run:ID, ..., workspace
    expect: ALLOW
    policies: [experiment-reader]   # optional: the determining policy ids, exactly
  - name: a request, parsed and resolved as the gateway does
    user: rita
    request: POST /api/2.0/mlflow/runs/log-batch
    body: {run_id: run-1}
    expect: DENY
  - name: the Production guard
    user: eddie
    action: DeleteModelVersion
    resource: model:churn
    version: "3"            # stage from the bindings' versions (or `stage: Production`)
    expect: DENY
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.authz.policies import SCHEMA_FILE, PolicyBundle
from gateway.simulate.bindings import BindingsData, bindings_from_data, load_bindings
from gateway.simulate.check import parse_resource, run_check, version_context
from gateway.simulate.inputs import (
    InputError,
    Location,
    expect_mapping,
    expect_strings,
    located,
    read_document,
)
from gateway.simulate.request import simulate_request
from gateway.simulate.sources import FileSource
from store.vocabulary import REGISTERED_MODEL

_TOP_KEYS = {"policies", "admin_groups", "bindings", "cases"}
_CASE_KEYS = {"name", "user", "groups", "action", "resource", "request", "body", "version"}
_CASE_KEYS |= {"stage", "aliases", "expect", "policies", "bindings"}


@dataclass(frozen=True)
class Case:
    name: str
    where: Location
    user: str
    groups: tuple[str, ...]
    expect: bool  # True = ALLOW
    action: str | None = None
    resource: str | None = None
    request: str | None = None
    body: str = ""
    version: str | None = None
    stage: str | None = None
    aliases: tuple[str, ...] = ()
    policies: tuple[str, ...] | None = None
    bindings: BindingsData | None = None


@dataclass(frozen=True)
class CaseFile:
    path: Path
    policies: Path | None  # as the file names it
    admin_groups: tuple[str, ...] | None
    bindings: BindingsData
    cases: tuple[Case, ...]


@dataclass(frozen=True)
class CaseResult:
    case: Case
    allowed: bool
    policy_ids: tuple[str, ...]
    reason: str

    @property
    def passed(self) -> bool:
        if self.allowed != self.case.expect:
            return False
        return self.case.policies is None or set(self.case.policies) == set(self.policy_ids)


def load_case_file(path: str | Path) -> CaseFile:
    path = Path(path)
    top = expect_mapping(read_document(path), Location(str(path)), "a policy test file")
    where = located(top, Location(str(path)))
    unknown = sorted(set(top) - _TOP_KEYS)
    if unknown:
        raise InputError(
            where, f"unknown key {unknown[0]!r} (expected {', '.join(sorted(_TOP_KEYS))})"
        )
    bindings = _bindings(top.get("bindings"), path, where)
    raw_cases = top.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise InputError(where, "`cases` must be a non-empty list")
    cases = tuple(_case(raw, path, where) for raw in raw_cases)
    names = [c.name for c in cases]
    for case in cases:
        if names.count(case.name) > 1:
            raise InputError(case.where, f"case name {case.name!r} is used twice")
    policies = top.get("policies")
    admin = top.get("admin_groups")
    return CaseFile(
        path=path,
        policies=(path.parent / str(policies)) if policies else None,
        admin_groups=expect_strings(admin, where, "admin_groups") if admin is not None else None,
        bindings=bindings,
        cases=cases,
    )


def default_policies_for(path: Path) -> Path | None:
    """The nearest folder at or above the case file that holds a policy schema."""
    for folder in [path.resolve().parent, *path.resolve().parents]:
        if (folder / SCHEMA_FILE).is_file():
            return folder
    return None


def _bindings(value: object, path: Path, where: Location) -> BindingsData:
    if value is None:
        return BindingsData()
    if isinstance(value, str):
        return load_bindings(path.parent / value)
    return bindings_from_data(value, where)


def _case(raw: object, path: Path, parent: Location) -> Case:
    raw = expect_mapping(raw, parent, "each case")
    where = located(raw, parent)
    unknown = sorted(set(raw) - _CASE_KEYS)
    if unknown:
        raise InputError(where, f"unknown key {unknown[0]!r} in a case")
    for key in ("name", "user", "expect"):
        if not raw.get(key):
            raise InputError(where, f"a case needs `{key}`")
    expect = str(raw["expect"]).upper()
    if expect not in ("ALLOW", "DENY"):
        raise InputError(where, f"expect: {raw['expect']!r} (expected ALLOW or DENY)")
    if bool(raw.get("request")) == bool(raw.get("action")):
        raise InputError(where, "a case needs either `action` + `resource`, or `request`")
    if raw.get("action") and not raw.get("resource"):
        raise InputError(where, "a case with `action` needs `resource`")
    if raw.get("resource"):
        try:
            parse_resource(str(raw["resource"]))
        except ValueError as exc:
            raise InputError(where, str(exc)) from None
    body = raw.get("body") or ""
    if isinstance(body, Mapping):
        body = json.dumps(body)
    policies = raw.get("policies")
    return Case(
        name=str(raw["name"]),
        where=where,
        user=str(raw["user"]),
        groups=expect_strings(raw.get("groups"), where, "groups"),
        expect=expect == "ALLOW",
        action=raw.get("action"),
        resource=str(raw["resource"]) if raw.get("resource") else None,
        request=raw.get("request"),
        body=str(body),
        version=str(raw["version"]) if raw.get("version") is not None else None,
        stage=raw.get("stage"),
        aliases=expect_strings(raw.get("aliases"), where, "aliases"),
        policies=expect_strings(policies, where, "policies") if policies is not None else None,
        bindings=_bindings(raw.get("bindings"), path, where) if raw.get("bindings") else None,
    )


def run_case(
    case: Case, bundle: PolicyBundle, shared: BindingsData, admin_groups: Iterable[str]
) -> CaseResult:
    data = case.bindings or shared
    if case.request:
        method, _, target = case.request.strip().partition(" ")
        r = simulate_request(
            bundle,
            FileSource(data),
            case.user,
            case.groups,
            method,
            target.strip(),
            case.body,
            admin_groups,
        )
        ids = r.result.decision.policy_ids if r.result else ()
        return CaseResult(case, r.allowed, ids, r.reason)
    resource = parse_resource(case.resource)
    context = None
    if resource.kind == REGISTERED_MODEL:
        facts = data.version(resource.id, case.version) if case.version else None
        stage = case.stage or (facts.stage if facts else None)
        aliases = case.aliases or (facts.aliases if facts else ())
        context = version_context(case.version, stage, aliases)
    result = run_check(
        bundle, case.user, case.groups, case.action, resource, data.lookup, admin_groups, context
    )
    return CaseResult(case, result.allowed, result.decision.policy_ids, result.reason)


def render_result(r: CaseResult) -> str:
    word = "ALLOW" if r.allowed else "DENY"
    if r.passed:
        return f"ok    {r.case.where}: {r.case.name}"
    expected = "ALLOW" if r.case.expect else "DENY"
    detail = f"expected {expected}, got {word}"
    if r.allowed == r.case.expect:
        detail = (
            f"expected policies [{', '.join(r.case.policies)}], got [{', '.join(r.policy_ids)}]"
        )
    return f"FAIL  {r.case.where}: {r.case.name}: {detail}\n      {r.reason}"
