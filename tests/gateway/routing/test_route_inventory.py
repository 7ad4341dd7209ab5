"""The route table covers exactly what MLflow's server serves, and routes only canonical paths."""

from __future__ import annotations

import pytest
from mlflow_inventory import reference_routes, served_routes

from gateway.errors import GatewayError
from gateway.routing import match_route, mlflow_routes, offered_actions, route_table

NOT_OFFERED_FAMILIES = {
    "ai-gateway",
    "mcp",
    "assistant",
    "jobs",
    "workspaces",
    "demo",
    "stubs",
    "ui",  # UI telemetry and /build (the UI itself and /static-files are offered)
}


@pytest.fixture(scope="module")
def served() -> set[tuple[str, str]]:
    return served_routes()


def _table() -> set[tuple[str, str]]:
    return {(r.method, r.path) for r in mlflow_routes()}


def test_every_route_mlflow_serves_has_a_row(served):
    missing = sorted(served - _table())
    assert not missing, f"routes without a row in the route table: {missing}"


def test_every_row_is_a_route_mlflow_serves(served):
    stale = sorted(_table() - served)
    assert not stale, f"rows for routes MLflow does not serve: {stale}"


def test_installed_mlflow_matches_the_measured_inventory(served):
    assert served == reference_routes()


def test_every_served_route_matches_its_own_row(served):
    for method, template in sorted(served):
        concrete = template.replace("{", "x").replace(":path}", "/y").replace("}", "")
        try:
            matched = match_route(method, concrete)
        except GatewayError as exc:
            row = next(r for r in mlflow_routes() if (r.method, r.path) == (method, template))
            assert row.refused, f"{method} {template} refused but offered: {exc}"
            continue
        assert (matched.route.method, matched.route.path) in served


def test_offered_rows_name_an_action_and_a_resource():
    for route in mlflow_routes():
        if route.offered:
            assert route.action and route.refs, route
        else:
            assert route.action is None and route.refused, route


def test_refused_families_are_the_documented_ones():
    refused = {r.family for r in mlflow_routes() if not r.offered}
    assert refused == NOT_OFFERED_FAMILIES


def test_api_and_ajax_twins_share_action_and_resources():
    by_tail: dict[tuple[str, str], set] = {}
    for r in route_table().routes:
        for prefix in ("/api/", "/ajax-api/"):
            if r.path.startswith(prefix):
                key = (r.method, r.path.removeprefix(prefix))
                by_tail.setdefault(key, set()).add((r.action, r.refs, r.params, r.filter))
    assert all(len(v) == 1 for v in by_tail.values())


def test_list_and_search_calls_have_a_response_filter_or_narrowing():
    for route in route_table().routes:
        if route.action and route.action.startswith("Search") and route.action != "SearchDatasets":
            narrowed = any(s.narrow for s in route.refs)
            assert route.filter or narrowed, route


def test_head_is_routed_as_get():
    matched = match_route("HEAD", "/api/2.0/mlflow-artifacts/artifacts/1/a/artifacts/m.pkl")
    assert matched.method == "GET"
    assert matched.route.action == "DownloadArtifact"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("OPTIONS", "/api/2.0/mlflow/runs/get"),
        ("TRACE", "/api/2.0/mlflow/runs/get"),
        ("PROPFIND", "/api/2.0/mlflow/runs/get"),
        ("GET", "/api/2.0/mlflow/runs/get/"),  # trailing slash
        ("GET", "/API/2.0/mlflow/runs/get"),  # case
        ("GET", "/api/2.0/mlflow/Runs/get"),
        ("GET", "/api/2.0/mlflow/runs/gets"),
        ("POST", "/api/2.0/mlflow/runs/get"),  # wrong method
        ("GET", "/api/2.1/mlflow/runs/get"),
        ("GET", "/api/3.0/mlflow/runs/get"),  # only served under 2.0
        ("GET", "/nope"),
        ("GET", "/api/2.0/mlflow/gateway-proxy"),  # ajax-only twin does not exist
        ("GET", "/static-files"),
    ],
)
def test_unknown_routes_are_refused_with_403(method, path):
    with pytest.raises(GatewayError) as info:
        match_route(method, path)
    assert info.value.status_code == 403
    assert info.value.to_json()["error_code"] == "PERMISSION_DENIED"


@pytest.mark.parametrize(
    "path",
    [
        "/api/2.0/mlflow%2Fruns/get",  # encoded slash
        "/api/2.0/mlflow%2fruns/get",
        "/api/2.0/mlflow/runs%5Cget",  # encoded backslash
        "/api/2.0/mlflow/runs/%2e%2e/experiments/get",  # encoded dot segment
        "/api/2.0/mlflow/runs/%252e%252e/get",  # double-encoded
        "/api/2.0//mlflow/runs/get",  # double slash
        "//api/2.0/mlflow/runs/get",
        "/api/2.0/mlflow/./runs/get",  # dot segments
        "/api/2.0/mlflow/x/../runs/get",
        "/api/2.0/mlflow/runs/get;jsessionid=1",  # path parameters
        "/api/2.0/mlflow/runs/get%00",
        "/api/2.0/mlflow/runs/get\\",
        "/api/2.0/mlflow/runs/g%zzet",  # malformed escape
        "/api/2.0/mlflow-artifacts/artifacts/1/%2e%2e/2/x",
        "/api/2.0/mlflow-artifacts/artifacts/1/../2/x",
        "api/2.0/mlflow/runs/get",
        "/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/ü.txt",  # raw, not percent-encoded
    ],
)
def test_non_canonical_paths_are_refused_with_400(path):
    with pytest.raises(GatewayError) as info:
        match_route("GET", path)
    assert info.value.status_code == 400


def test_harmless_escapes_decode_to_the_same_route():
    matched = match_route("GET", "/api/2.0/mlflow/runs/g%65t")
    assert matched.route.action == "GetRun"
    matched = match_route("PUT", "/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/a%20b.txt")
    assert matched.param("artifact_path") == "1/r/artifacts/a b.txt"
    matched = match_route("GET", "/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/%C3%BC.txt")
    assert matched.param("artifact_path") == "1/r/artifacts/ü.txt"


def test_static_segments_win_over_path_parameters():
    assert match_route("GET", "/api/3.0/mlflow/traces/batchGet").route.action == "BatchGetTraces"
    assert match_route("GET", "/api/3.0/mlflow/traces/get").route.action == "GetTrace"
    assert match_route("GET", "/api/3.0/mlflow/traces/tr-1").route.action == "GetTraceInfoV3"
    assert match_route("POST", "/api/2.0/mlflow/logged-models/search").route.action == (
        "SearchLoggedModels"
    )


def test_not_offered_family_names_the_reason():
    with pytest.raises(GatewayError) as info:
        match_route("GET", "/api/3.0/mlflow/gateway/secrets/list")
    assert info.value.status_code == 403
    assert "not offered" in info.value.message


def test_offered_actions_are_mlflow_call_names():
    actions = offered_actions()
    for name in ("CreateRun", "LogBatch", "SearchRuns", "GetModelVersionByAlias"):
        assert name in actions
    for name in ("UploadArtifact", "DownloadArtifact", "ExportTraces"):
        assert name in actions


def test_every_row_describes_where_its_ids_come_from():
    lines = [r.describe() for r in route_table().routes]
    assert all(line.startswith(("GET ", "POST ", "PUT ", "PATCH ", "DELETE ")) for line in lines)
    assert "GET /api/2.0/mlflow/runs/get → GetRun on run (run_id|run_uuid) [params]" in lines
