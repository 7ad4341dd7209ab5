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
    # recorded as the gateway's audit line records it: a denial, answered empty
    assert not bob.allowed and not bob.forwarded and bob.result.narrowed_to_nothing
    assert bob.reason.startswith("EMPTY: every experiment the search names is unreadable")


def test_refusals_are_reported_before_any_decision(bundle, bindings_file):
    r = _simulate(bundle, bindings_file, "rita", (), "GET", "/api/2.0/mlflow/unknown")
    assert r.refusal is not None and r.refusal.status_code == 403 and not r.allowed


def _graphql(query: str, variables: dict | None = None) -> str:
    return json.dumps({"query": query, "variables": variables or {}})


RUN_1 = _graphql('{ mlflowGetRun(input: {runId: "run-1"}) { run { info { runId } } } }')
RUN_8 = _graphql('{ mlflowGetRun(input: {runId: "run-8"}) { run { info { runId } } } }')


def test_graphql_is_decided_per_root_field_for_non_administrators(bundle, bindings_file):
    rita = _simulate(bundle, bindings_file, "rita", (), "POST", "/graphql", RUN_1)
    assert rita.allowed and rita.forwarded
    assert [(d.action, d.resource.id, d.allowed) for d in rita.graphql] == [
        ("GetRun", "run-1", True)
    ]
    # gus reads experiment 7 through his group; experiment 8 is private
    gus = _simulate(bundle, bindings_file, "gus", ("vision",), "POST", "/graphql", RUN_8)
    assert not gus.allowed and gus.verdict.denial.resource.id == "run-8"
    assert gus.reason.startswith("DENY") and "experiment 8 is private" in gus.reason
    typename = _graphql("{ __typename }")
    assert _simulate(bundle, bindings_file, "rita", (), "POST", "/graphql", typename).allowed
    admin = _simulate(bundle, bindings_file, "ada", ("admins",), "POST", "/graphql", RUN_8)
    assert admin.allowed and admin.graphql == ()  # administrators are not checked per field


def test_graphql_refusals_and_get_are_as_in_the_gateway(bundle, bindings_file):
    mutation = _graphql('mutation { mlflowDeleteRun(input: {runId: "run-1"}) { __typename } }')
    refused = _simulate(bundle, bindings_file, "rita", (), "POST", "/graphql", mutation)
    assert refused.refusal.status_code == 403 and "mutations are not offered" in refused.reason
    broken = _simulate(bundle, bindings_file, "rita", (), "POST", "/graphql", "{not json")
    assert broken.refusal.status_code == 400 and not broken.allowed
    get = _simulate(bundle, bindings_file, "rita", (), "GET", "/graphql?query=%7B__typename%7D")
    assert not get.allowed and "checked on POST only" in get.reason


def test_cli_names_the_denied_graphql_field(bindings_file, capsys):
    args = ["request", "--user", "gus", "--groups", "vision", "--bindings", str(bindings_file)]
    assert main([*args, "POST", "/graphql", RUN_8]) == 1
    out = capsys.readouterr().out
    assert "GraphQL root fields" in out
    assert "run run-8 (as GetRun) → Experiment::'8': deny [experiment-private]" in out
    assert "DECISION: DENY" in out
    assert main([*args, "POST", "/graphql", RUN_1]) == 0
    assert "DECISION: ALLOW" in capsys.readouterr().out


def test_metrics_is_the_get_metrics_call_on_the_workspace(bundle, bindings_file):
    rita = _simulate(bundle, bindings_file, "rita", (), "GET", "/metrics")
    assert not rita.allowed and rita.parsed.action == "GetMetrics"
    assert rita.result.decision.target == ("Workspace", "default")
    ada = _simulate(bundle, bindings_file, "ada", ("admins",), "GET", "/metrics")
    assert ada.allowed and ada.result.decision.policy_ids == ("admin-all",)
    assert _simulate(bundle, bindings_file, "ada", ("admins",), "POST", "/metrics").refusal


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
    spans = tmp_path / "spans.json"
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "s"}
    spans.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}))
    otlp = [
        "request",
        "--user",
        "rita",
        "--bindings",
        str(bindings_file),
        "--header",
        "x-mlflow-experiment-id: 7",
        "--header",
        "content-type: application/json",
        "POST",
        "/v1/traces",
        f"@{spans}",
    ]
    assert main(otlp) == 1
    out = capsys.readouterr().out
    assert "ExportTraces" in out and f"tr-{'ab' * 16}" in out
