"""`request`: the route, the action, the resolved resources and the decision."""

from __future__ import annotations

import json

from gateway.simulate.bindings import load_bindings
from gateway.simulate.cli import main
from gateway.simulate.request import simulate_request
from gateway.simulate.sources import FileSource


def _simulate(bundle, bindings_file, user, groups, method, target, body=""):
    source = FileSource(load_bindings(bindings_file))
    return simulate_request(bundle, source, user, groups, method, target, body)


def test_a_run_resolves_to_its_experiment(bundle, bindings_file):
    r = _simulate(bundle, bindings_file, "rita", (), "GET", "/api/2.0/mlflow/runs/get?run_id=run-1")
    assert r.allowed and r.parsed.action == "GetRun"
    assert r.result.decision.target == ("Experiment", "7")


def test_a_search_is_narrowed_and_an_empty_one_is_not_forwarded(bundle, bindings_file):
    body = json.dumps({"experiment_ids": ["7", "8"]})
    gus = _simulate(
        bundle, bindings_file, "gus", ("vision",), "POST", "/api/2.0/mlflow/runs/search", body
    )
    assert gus.forwarded and [r.id for r in gus.result.kept] == ["7"]
    bob = _simulate(
        bundle, bindings_file, "nobody", (), "POST", "/api/2.0/mlflow/runs/search", body
    )
    assert bob.allowed and not bob.forwarded


def test_refusals_are_reported_before_any_decision(bundle, bindings_file):
    r = _simulate(bundle, bindings_file, "rita", (), "GET", "/api/2.0/mlflow/unknown")
    assert r.refusal is not None and r.refusal.status == 403 and not r.allowed


def test_graphql_is_for_administrators(bundle, bindings_file):
    body = json.dumps({"query": "{ __typename }"})
    assert not _simulate(bundle, bindings_file, "rita", (), "POST", "/graphql", body).allowed
    assert _simulate(bundle, bindings_file, "ada", ("admins",), "POST", "/graphql", body).allowed


def test_cli_shows_route_action_resources_and_decision(bindings_file, capsys):
    code = main(
        [
            "request",
            "--user",
            "eddie",
            "--bindings",
            str(bindings_file),
            "POST",
            "/api/2.0/mlflow/model-versions/create",
            json.dumps({"name": "churn", "source": "runs:/run-8/model", "run_id": "run-8"}),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "route: POST /api/2.0/mlflow/model-versions/create → CreateModelVersion" in out
    assert "action: CreateModelVersion" in out
    assert "registered_model churn → RegisteredModel::'churn': allow [model-editor]" in out
    assert "run run-8 (as GetRun) → Experiment::'8': deny [experiment-private]" in out
    assert out.count("DECISION: DENY") == 1


def test_cli_headers_and_body_from_a_file(bindings_file, tmp_path, capsys):
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"run_id": "run-1", "key": "m", "value": 1, "timestamp": 0}))
    args = [
        "request",
        "--user",
        "bob",
        "--bindings",
        str(bindings_file),
        "POST",
        "/api/2.0/mlflow/runs/log-metric",
        f"@{body}",
    ]
    assert main(args) == 0
    assert "experiment-editor" in capsys.readouterr().out
    otlp = [
        "request",
        "--user",
        "rita",
        "--bindings",
        str(bindings_file),
        "--header",
        "x-mlflow-experiment-id: 7",
        "POST",
        "/v1/traces",
    ]
    assert main(otlp) == 1
    assert "ExportTraces" in capsys.readouterr().out
