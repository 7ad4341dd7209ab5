"""Roles × calls: every principal kind against every call the role files grant.

Expected decisions come from the role files themselves: an action listed in the reader's
file is expected for readers, editors and managers; the editor's for editors and managers;
the manager's for managers. Admins may make every call; nobody else gets a call no file
lists. Private experiments ignore group bindings.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cedarpy
import pytest

from gateway.authz.decide import Authorizer, model_version_context
from gateway.authz.entities import Bindings
from gateway.authz.policies import load_policies
from gateway.authz.registry_facts import registry_context
from gateway.routing.parse import ResourceRef, parse_request
from gateway.simulate.bindings import VersionFacts
from store.handler.identity import Principal

POLICIES = Path(__file__).resolve().parents[3] / "policies"
LEVEL = {"reader": 1, "editor": 2, "manager": 3}
ROLE_FILES = {
    "experiment-reader": ("Experiment", 1),
    "experiment-editor": ("Experiment", 2),
    "experiment-manager": ("Experiment", 3),
    "model-reader": ("RegisteredModel", 1),
    "model-editor": ("RegisteredModel", 2),
    "model-manager": ("RegisteredModel", 3),
}


def role_file_actions() -> dict[str, tuple[str, int]]:
    """action → (resource type, lowest role level) as the policy files list them."""
    out: dict[str, tuple[str, int]] = {}
    for path in sorted(POLICIES.glob("*.cedar")):
        parsed = json.loads(cedarpy.policies_to_json_str(path.read_text()))
        for policy in parsed["staticPolicies"].values():
            pid = policy["annotations"]["id"]
            if pid in ROLE_FILES:
                for entity in policy["action"]["entities"]:
                    out[entity["id"]] = ROLE_FILES[pid]
    return out


def workspace_actions() -> set[str]:
    parsed = json.loads(cedarpy.policies_to_json_str((POLICIES / "00_workspace.cedar").read_text()))
    return {e["id"] for p in parsed["staticPolicies"].values() for e in p["action"]["entities"]}


ACTIONS = role_file_actions()
EVERYONE_ACTIONS = workspace_actions()
ADMIN_ONLY = {"SetArtifactLocation", "RegisterExternalSource", "GetUserPermissions"}
# calls the Production guard decides on facts; without them it fails closed: managers only
GUARDED = {
    "DeleteModelVersion",
    "TransitionModelVersionStage",
    "SetRegisteredModelAlias",
    "DeleteRegisteredModelAlias",
}

SHARED = Bindings.from_data(
    "experiment",
    "1",
    {
        "users": {"rita": "reader", "eddie": "editor", "mona": "manager"},
        "groups": {"vision": "editor"},
    },
)
PRIVATE = Bindings.from_data(
    "experiment",
    "2",
    {
        "users": {"mona": "manager", "pia": "reader"},
        "groups": {"vision": "editor"},
        "private": True,
    },
)
MODEL = Bindings.from_data(
    "registered_model",
    "churn",
    {
        "users": {"rita": "reader", "eddie": "editor", "mona": "manager"},
        "groups": {"vision": "reader"},
    },
)
RESOURCES = {
    ("experiment", "1"): SHARED,
    ("experiment", "2"): PRIVATE,
    ("registered_model", "churn"): MODEL,
}
# children resolve to their experiment or model, as the gateway's resolver does
CHILDREN = {("run", "run-1"): SHARED, ("run", "run-2"): PRIVATE, ("trace", "tr-1"): SHARED}
CHILDREN |= {("logged_model", "m-1"): SHARED, ("experiment_name", "shared"): SHARED}
CHILDREN |= {("dataset", "d-1"): SHARED}


def lookup(ref: ResourceRef) -> Bindings | None:
    return RESOURCES.get((ref.kind, ref.id)) or CHILDREN.get((ref.kind, ref.id))


# principal kind → (principal, role level on the shared experiment, private one, model)
PRINCIPALS = {
    "reader": (Principal("rita", "rita", groups=("nlp",)), 1, 0, 1),
    "editor": (Principal("eddie", "eddie", groups=("nlp",)), 2, 0, 2),
    "manager": (Principal("mona", "mona", groups=("nlp",)), 3, 3, 3),
    "group member": (Principal("gus", "gus", groups=("vision",)), 2, 0, 1),
    "private direct reader": (Principal("pia", "pia", groups=("vision",)), 2, 1, 1),
    "no grant": (Principal("bob", "bob", groups=("nlp",)), 0, 0, 0),
    "admin": (Principal("ada", "ada", groups=("admins",)), 9, 9, 9),
}


@pytest.fixture(scope="module")
def authorizer() -> Authorizer:
    return Authorizer(load_policies(POLICIES), admin_groups=("admins",))


def _cases():
    for kind in PRINCIPALS:
        for action, (rtype, need) in sorted(ACTIONS.items()):
            if rtype == "Experiment":
                yield kind, action, ResourceRef("experiment", "1"), 1, need
                yield kind, action, ResourceRef("experiment", "2"), 2, need
            else:
                yield kind, action, ResourceRef("registered_model", "churn"), 3, need


def test_the_role_files_cover_both_resource_types():
    assert {t for t, _ in ACTIONS.values()} == {"Experiment", "RegisteredModel"}
    assert len(ACTIONS) > 80


def test_role_matrix_matches_the_role_files(authorizer):
    mismatches = []
    for kind, action, ref, column, need in _cases():
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

J = {"content-type": "application/json"}
REPRESENTATIVE = [
    # (family, method, path, query, body, resource level needed; 0 = everyone, 9 = admin)
    ("experiments", "GET", "/api/2.0/mlflow/experiments/get", "experiment_id=1", None, 1),
    (
        "experiments",
        "GET",
        "/api/2.0/mlflow/experiments/get-by-name",
        "experiment_name=shared",
        None,
        1,
    ),
    ("experiments", "POST", "/api/2.0/mlflow/experiments/update", "", {"experiment_id": "1"}, 2),
    ("experiments", "POST", "/api/2.0/mlflow/experiments/delete", "", {"experiment_id": "1"}, 3),
    ("experiments", "POST", "/api/2.0/mlflow/experiments/create", "", {"name": "x"}, 0),
    (
        "experiments",
        "POST",
        "/api/2.0/mlflow/experiments/create",
        "",
        {"name": "x", "artifact_location": "s3://b/x"},
        9,
    ),
    ("runs", "GET", "/api/2.0/mlflow/runs/get", "run_id=run-1", None, 1),
    ("runs", "POST", "/api/2.0/mlflow/runs/log-batch", "", {"run_id": "run-1"}, 2),
    ("runs", "POST", "/ajax-api/2.0/mlflow/runs/create", "", {"experiment_id": "1"}, 2),
    ("runs", "POST", "/api/2.0/mlflow/runs/delete", "", {"run_id": "run-1"}, 3),
    (
        "runs",
        "GET",
        "/ajax-api/2.0/mlflow/metrics/get-history-bulk",
        "run_id=run-1&metric_key=m",
        None,
        1,
    ),
    (
        "artifacts",
        "GET",
        "/api/2.0/mlflow-artifacts/artifacts/1/run-1/artifacts/m.pkl",
        "",
        None,
        1,
    ),
    (
        "artifacts",
        "PUT",
        "/api/2.0/mlflow-artifacts/artifacts/1/run-1/artifacts/m.pkl",
        "",
        None,
        2,
    ),
    ("artifacts", "POST", "/api/2.0/mlflow-artifacts/mpu/create/1/run-1/artifacts/big", "", {}, 2),
    (
        "artifacts",
        "DELETE",
        "/api/2.0/mlflow-artifacts/artifacts/1/run-1/artifacts/m.pkl",
        "",
        None,
        3,
    ),
    ("artifacts", "GET", "/get-artifact", "run_uuid=run-1&path=m.pkl", None, 1),
    ("logged-models", "GET", "/api/2.0/mlflow/logged-models/m-1", "", None, 1),
    ("logged-models", "PATCH", "/api/2.0/mlflow/logged-models/m-1", "", {"status": "READY"}, 2),
    ("logged-models", "DELETE", "/api/2.0/mlflow/logged-models/m-1", "", None, 3),
    ("traces", "GET", "/api/3.0/mlflow/traces/tr-1", "", None, 1),
    ("traces", "POST", "/api/3.0/mlflow/traces/tr-1/assessments", "", {"assessment": {}}, 2),
    ("traces", "POST", "/api/3.0/mlflow/traces/delete-traces", "", {"experiment_id": "1"}, 3),
    ("datasets", "GET", "/api/3.0/mlflow/datasets/d-1", "", None, 1),
    ("scorers", "GET", "/api/3.0/mlflow/scorers/list", "experiment_id=1", None, 1),
    ("registered-models", "GET", "/api/2.0/mlflow/registered-models/get", "name=churn", None, 1),
    (
        "registered-models",
        "POST",
        "/api/2.0/mlflow/registered-models/set-tag",
        "",
        {"name": "churn", "key": "k", "value": "v"},
        2,
    ),
    (
        "registered-models",
        "DELETE",
        "/api/2.0/mlflow/registered-models/delete",
        "",
        {"name": "churn"},
        3,
    ),
    (
        "model-versions",
        "GET",
        "/api/2.0/mlflow/model-versions/get",
        "name=churn&version=1",
        None,
        1,
    ),
    (
        "model-versions",
        "POST",
        "/api/2.0/mlflow/model-versions/transition-stage",
        "",
        {"name": "churn", "version": "1", "stage": "Staging"},
        2,
    ),
    ("server", "GET", "/version", "", None, 0),
    ("ui", "GET", "/static-files/lib/app.js", "", None, 0),
    ("graphql", "POST", "/graphql", "", {"query": "{ __typename }"}, 0),
]


def _level(kind: str, ref: ResourceRef) -> int:
    if ref.kind == "workspace":
        return 0
    bindings = lookup(ref)
    column = {"1": 1, "2": 2, "churn": 3}[bindings.id]
    return PRINCIPALS[kind][column]


class _StagingOnly:
    """Registry facts of `churn`: every version in stage None, no alias set."""

    def version(self, name, version):
        return VersionFacts("None") if name == "churn" else None

    def aliases(self, name):
        return {} if name == "churn" else None

    def versions_in_stage(self, name, stage):
        return () if name == "churn" else None


@pytest.mark.parametrize(("family", "method", "path", "query", "body", "need"), REPRESENTATIVE)
def test_representative_calls_of_every_family(authorizer, family, method, path, query, body, need):
    raw = json.dumps(body).encode() if body is not None else b""
    parsed = parse_request(method, path, query, J if body is not None else {}, raw)
    context = registry_context(parsed, _StagingOnly())
    for kind, (principal, *_levels) in PRINCIPALS.items():
        decision = authorizer.decide(principal, parsed.action, parsed.resources, lookup, context)
        if need == 0:
            expected = True
        elif need == 9:
            expected = kind == "admin"
        else:
            expected = all(_level(kind, r) >= need for r in parsed.resources)
        assert decision.allowed == expected, (family, kind, parsed.action, decision)


def _matrix(authorizer: Authorizer) -> dict:
    out = {}
    for kind, action, ref, _column, _need in _cases():
        principal = PRINCIPALS[kind][0]
        out[(kind, action, ref.id)] = authorizer.decide(principal, action, [ref], lookup).allowed
    return out


def test_letting_readers_tag_models_flips_exactly_those_cells(tmp_path, authorizer):
    import shutil

    edited = tmp_path / "policies"
    shutil.copytree(POLICIES, edited)
    reader = edited / "20_model_reader.cedar"
    text = reader.read_text()
    anchor = 'Action::"GetModelVersionArtifact"'
    reader.write_text(text.replace(anchor, anchor + ',\n    Action::"SetRegisteredModelTag"'))
    after = _matrix(Authorizer(load_policies(edited), admin_groups=("admins",)))
    before = _matrix(authorizer)
    flipped = sorted(k for k in before if before[k] != after[k])
    readers = sorted(k for k, (_p, _e, _x, model) in PRINCIPALS.items() if model == 1)
    assert flipped == [(k, "SetRegisteredModelTag", "churn") for k in readers]


def test_unknown_experiment_name_is_forwarded_for_mlflow_to_answer_404(authorizer):
    from gateway.authz.decide import MISSING

    parsed = parse_request("GET", "/api/2.0/mlflow/experiments/get-by-name", "experiment_name=new")
    assert parsed.filter == "experiment"  # the returned experiment is checked again
    bob = PRINCIPALS["no grant"][0]
    decision = authorizer.decide(bob, parsed.action, parsed.resources, lambda ref: MISSING)
    assert decision.allowed and "does not exist" in decision.note
    # an existing name is decided as usual
    assert not authorizer.decide(bob, parsed.action, parsed.resources, lambda ref: SHARED).allowed


def test_other_missing_resources_are_denied_not_404(authorizer):
    from gateway.authz.decide import MISSING

    admin = PRINCIPALS["admin"][0]
    decision = authorizer.decide(admin, "GetRun", [ResourceRef("run", "gone")], lambda r: MISSING)
    assert not decision.allowed and decision.errors == ("no run 'gone'",)


def _search(*experiment_ids):
    body = json.dumps({"experiment_ids": list(experiment_ids)}).encode()
    return parse_request("POST", "/api/2.0/mlflow/runs/search", "", J, body)


def test_search_is_narrowed_to_readable_experiments(authorizer):
    gus = PRINCIPALS["group member"][0]  # reads experiment 1 through a group, not private 2
    result = authorizer.authorize(gus, _search("1", "2"), lookup)
    assert result.allowed and not result.narrowed_to_nothing
    assert [r.id for r in result.kept] == ["1"] and [r.id for r in result.dropped] == ["2"]
    assert result.decision.policy_ids == ("experiment-reader",)


def test_search_of_only_forbidden_experiments_is_empty_not_denied(authorizer):
    bob = PRINCIPALS["no grant"][0]
    result = authorizer.authorize(bob, _search("1", "2"), lookup)
    assert result.allowed and result.narrowed_to_nothing and not result.kept


def test_authorize_denies_when_a_strict_reference_is_denied(authorizer):
    body = json.dumps({"run_id": "run-1", "trace_ids": ["tr-1"]}).encode()
    parsed = parse_request("POST", "/api/2.0/mlflow/traces/link-to-run", "", J, body)
    eddie, rita = PRINCIPALS["editor"][0], PRINCIPALS["reader"][0]
    assert authorizer.authorize(eddie, parsed, lookup).allowed
    result = authorizer.authorize(rita, parsed, lookup)
    assert not result.allowed and result.decision.action == "LinkTracesToRun"
    assert len(result.decisions) == 2
