"""Roles × calls: every principal kind against every call the role files grant.

Expected decisions come from the role files themselves: an action listed in the reader's
file is expected for readers, editors and managers; the editor's for editors and managers;
the manager's for managers. Admins may make every call; nobody else gets a call no file
lists. Private experiments ignore group bindings.
"""

from __future__ import annotations

import shutil

import pytest
from role_fixtures import (
    ACTIONS,
    ADMIN_ONLY,
    EVERYONE_ACTIONS,
    GUARDED,
    LEVEL,
    POLICIES,
    PRINCIPALS,
    cases,
    lookup,
)

from gateway.authz.decide import Authorizer, model_version_context
from gateway.authz.policies import load_policies
from gateway.routing.parse import ResourceRef


def test_the_role_files_cover_both_resource_types():
    assert {t for t, _ in ACTIONS.values()} == {"Experiment", "RegisteredModel"}
    assert len(ACTIONS) > 80


def test_role_matrix_matches_the_role_files(authorizer):
    mismatches = []
    for kind, action, ref, column, need in cases():
        principal = PRINCIPALS[kind][0]
        level = PRINCIPALS[kind][column]
        expected = level >= need
        if action in GUARDED:  # the Production guard without facts
            expected = level >= LEVEL["manager"]
        decision = authorizer.decide(principal, action, [ref], lookup)
        if decision.allowed != expected or decision.errors:
            mismatches.append((kind, action, ref.id, decision.allowed, decision.errors))
    assert not mismatches, mismatches[:20]


@pytest.mark.parametrize("kind", sorted(PRINCIPALS))
def test_workspace_calls(authorizer, kind):
    principal = PRINCIPALS[kind][0]
    everyone = ResourceRef("workspace", "default")
    for action in sorted(EVERYONE_ACTIONS):
        assert authorizer.decide(principal, action, [everyone], lookup).allowed, action
    for action in sorted(ADMIN_ONLY):
        decision = authorizer.decide(principal, action, [everyone], lookup)
        assert decision.allowed == (kind == "admin"), action


def test_private_experiment_ignores_group_bindings(authorizer):
    gus = PRINCIPALS["group member"][0]
    decision = authorizer.decide(gus, "GetExperiment", [ResourceRef("experiment", "2")], lookup)
    assert not decision.allowed
    assert decision.policy_ids == ("experiment-private",)
    # a direct reader who is also in an editor group is a reader only
    pia = PRINCIPALS["private direct reader"][0]
    ref = ResourceRef("experiment", "2")
    assert authorizer.decide(pia, "GetRun", [ref], lookup).allowed
    assert not authorizer.decide(pia, "LogMetric", [ref], lookup).allowed


def test_production_versions_are_deleted_by_managers_only(authorizer):
    ref = [ResourceRef("registered_model", "churn")]
    prod = model_version_context("3", "Production", ["champion"])
    staging = model_version_context("2", "Staging")
    eddie, mona = PRINCIPALS["editor"][0], PRINCIPALS["manager"][0]
    assert authorizer.decide(eddie, "DeleteModelVersion", ref, lookup, staging).allowed
    denied = authorizer.decide(eddie, "DeleteModelVersion", ref, lookup, prod)
    assert not denied.allowed and denied.policy_ids == ("model-protect-production",)
    assert authorizer.decide(mona, "DeleteModelVersion", ref, lookup, prod).allowed
    admin = PRINCIPALS["admin"][0]
    assert authorizer.decide(admin, "DeleteModelVersion", ref, lookup, prod).allowed


def _facts(stage: str, *, to: str = "Staging", archive: bool = False, alias: str = "None"):
    """Registry facts: version 2 in `stage`; alias `a` pointing at a version in `alias`."""
    context = model_version_context("2", stage)
    context["transition"] = {"stage": to, "archiveExistingVersions": archive}
    context["productionVersions"] = ["2"] if stage == "Production" else []
    context["alias"] = {"name": "a"}
    if alias != "unset":
        context["alias"]["target"] = model_version_context("5", alias, ["a"])["modelVersion"]
    return context


@pytest.mark.parametrize(
    ("action", "context", "policy"),
    [
        ("TransitionModelVersionStage", _facts("Production", to="Archived"),
         "model-protect-production"),
        ("TransitionModelVersionStage", _facts("Staging", to="Production"),
         "model-promote-production"),
        ("SetRegisteredModelAlias", _facts("None", alias="Production"),
         "model-protect-production-alias"),
        ("DeleteRegisteredModelAlias", _facts("None", alias="Production"),
         "model-protect-production-alias"),
        ("SetRegisteredModelAlias", _facts("Production", alias="unset"),
         "model-alias-to-production"),
    ],
)  # fmt: skip
def test_production_is_changed_by_managers_only(authorizer, action, context, policy):
    ref = [ResourceRef("registered_model", "churn")]
    eddie, mona = PRINCIPALS["editor"][0], PRINCIPALS["manager"][0]
    denied = authorizer.decide(eddie, action, ref, lookup, context)
    assert not denied.allowed and policy in denied.policy_ids, denied
    assert authorizer.decide(mona, action, ref, lookup, context).allowed
    assert authorizer.decide(PRINCIPALS["admin"][0], action, ref, lookup, context).allowed


def test_archiving_production_stays_the_managers_when_editors_may_promote(tmp_path):
    relaxed = tmp_path / "policies"
    shutil.copytree(POLICIES, relaxed, ignore=shutil.ignore_patterns("tests"))
    guard = relaxed / "23_model_protect_production.cedar"
    text = guard.read_text()
    start = text.index("// Moving a version into Production.")
    end = text.index("// A transition to Production with archive_existing_versions")
    guard.write_text(text[:start] + text[end:])  # editors may promote now
    authorizer = Authorizer(load_policies(relaxed), admin_groups=("admins",))
    eddie, ref = PRINCIPALS["editor"][0], [ResourceRef("registered_model", "churn")]

    def promote(archive: bool, in_production: list[str]):
        context = _facts("Staging", to="Production", archive=archive)
        context["productionVersions"] = in_production
        return authorizer.decide(eddie, "TransitionModelVersionStage", ref, lookup, context)

    assert promote(False, ["3"]).allowed
    assert promote(True, []).allowed
    assert promote(True, ["2"]).allowed  # only the version being promoted
    denied = promote(True, ["2", "3"])
    assert not denied.allowed and denied.policy_ids == ("model-archive-production",)


def test_every_referenced_resource_must_allow(authorizer):
    eddie = PRINCIPALS["editor"][0]
    both = [ResourceRef("run", "run-1"), ResourceRef("run", "run-2")]
    decision = authorizer.decide(eddie, "LogBatch", both, lookup)
    assert not decision.allowed and decision.resource == ResourceRef("run", "run-2")
    assert decision.target == ("Experiment", "2")


def test_unresolvable_resource_is_denied(authorizer):
    admin = PRINCIPALS["admin"][0]
    decision = authorizer.decide(admin, "GetRun", [ResourceRef("run", "ghost")], lookup)
    assert not decision.allowed and decision.errors


def test_failing_lookup_is_denied(authorizer):
    def broken(ref):
        raise RuntimeError("store down")

    admin = PRINCIPALS["admin"][0]
    decision = authorizer.decide(admin, "GetRun", [ResourceRef("run", "run-1")], broken)
    assert not decision.allowed and "store down" in decision.errors[0]


def test_context_that_does_not_match_the_schema_is_denied(authorizer):
    mona = PRINCIPALS["manager"][0]
    bad = {"modelVersion": {"version": "1"}}  # stage and aliases missing
    decision = authorizer.decide(
        mona, "GetRegisteredModel", [ResourceRef("registered_model", "churn")], lookup, bad
    )
    assert not decision.allowed and decision.errors


def test_no_resource_is_denied(authorizer):
    decision = authorizer.decide(PRINCIPALS["admin"][0], "GetRun", [], lookup)
    assert not decision.allowed


def test_decision_names_policies_and_revision(authorizer):
    rita = PRINCIPALS["reader"][0]
    decision = authorizer.decide(rita, "GetRun", [ResourceRef("run", "run-1")], lookup)
    assert decision.allowed and decision.policy_ids == ("experiment-reader",)
    assert decision.revision == authorizer.policies.revision


# ---- the same matrix through parsed HTTP requests, one representative call per family ---
