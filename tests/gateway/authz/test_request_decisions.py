"""Whole requests decided: representative calls of every family, narrowed searches, missing
resources, a policy edit's effect on the matrix."""

from __future__ import annotations

import json
import shutil

import pytest
from role_fixtures import (
    POLICIES,
    PRINCIPALS,
    SHARED,
    cases,
    lookup,
)

from gateway.authz.decide import Authorizer
from gateway.authz.policies import load_policies
from gateway.authz.registry_facts import registry_context
from gateway.routing.parse import ResourceRef, parse_request
from gateway.simulate.bindings import VersionFacts

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
    for kind, action, ref, _column, _need in cases():
        principal = PRINCIPALS[kind][0]
        out[(kind, action, ref.id)] = authorizer.decide(principal, action, [ref], lookup).allowed
    return out


def test_letting_readers_tag_models_flips_exactly_those_cells(tmp_path, authorizer):

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


def test_a_link_to_a_trace_not_logged_yet_is_decided_on_the_run(authorizer):
    from gateway.authz.decide import MISSING

    body = json.dumps({"run_id": "run-1", "trace_ids": ["tr-later"]}).encode()
    parsed = parse_request("POST", "/api/2.0/mlflow/traces/link-to-run", "", J, body)

    def later(ref: ResourceRef):
        return MISSING if ref.id == "tr-later" else lookup(ref)

    eddie, rita = PRINCIPALS["editor"][0], PRINCIPALS["reader"][0]
    assert authorizer.authorize(eddie, parsed, later).allowed
    assert not authorizer.authorize(rita, parsed, later).allowed
