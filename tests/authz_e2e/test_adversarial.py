"""Bob (group nlp) tries every known way around the gateway into Alice's experiment and model."""

from __future__ import annotations

import json

import httpx
import pytest
from mlflow import MlflowClient

from store.handler.identity import Principal, sign_identity

ALICE = ("alice-adv", ("vision",))
BOB = ("bob-adv", ("nlp",))
API = "/api/2.0/mlflow"


@pytest.fixture(scope="module")
def world(authz_stack):
    with authz_stack.as_user(*ALICE):
        client = MlflowClient()
        alice_exp = client.create_experiment("adv-alice")
        alice_run = client.create_run(alice_exp).info.run_id
        client.log_metric(alice_run, "secret", 42.0)
        client.create_registered_model("adv-alice-model")
    with authz_stack.as_user(*BOB):
        client = MlflowClient()
        bob_exp = client.create_experiment("adv-bob")
        bob_run = client.create_run(bob_exp).info.run_id
        client.create_registered_model("adv-bob-model")
    return {"alice_exp": alice_exp, "alice_run": alice_run, "bob_exp": bob_exp, "bob_run": bob_run}


@pytest.fixture
def bob(authz_stack):
    with authz_stack.http(*BOB) as http:
        yield http


def refused(response: httpx.Response) -> bool:
    """Refused without leaking: 400/403/404/405 and no trace of Alice's data."""
    return response.status_code in (400, 403, 404, 405) and "secret" not in response.text


def test_bob_is_denied_alices_run_with_403_naming_the_action(bob, world):
    response = bob.get(f"{API}/runs/get", params={"run_id": world["alice_run"]})
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert "GetRun" in response.json()["message"]
    assert "permit" not in response.text and "principal" not in response.text


def test_a_run_in_the_default_experiment_is_denied_with_a_way_out(bob):
    response = bob.post(f"{API}/runs/create", json={"experiment_id": "0"})
    assert response.status_code == 403
    assert "mlflow.set_experiment" in response.json()["message"]


def test_unknown_ids_are_403_not_404(bob):
    response = bob.get(f"{API}/runs/get", params={"run_id": "0" * 32})
    assert response.status_code == 403


def test_parameter_pollution_between_query_and_body(bob, world):
    response = bob.request(
        "GET",
        f"{API}/runs/get",
        params={"run_id": world["bob_run"]},
        content=json.dumps({"run_id": world["alice_run"]}),
        headers={"Content-Type": "application/json"},
    )
    assert refused(response)
    # POST handlers read the body only: the body's run is the one decided
    response = bob.post(
        f"{API}/runs/log-metric",
        params={"run_id": world["bob_run"]},
        json={"run_id": world["alice_run"], "key": "x", "value": 1, "timestamp": 1, "step": 0},
    )
    assert response.status_code == 403


def test_get_with_a_body_only_is_decided_on_the_body(bob, world):
    response = bob.request(
        "GET",
        f"{API}/runs/get",
        content=json.dumps({"run_id": world["alice_run"]}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        lambda w: {"run_id": w["bob_run"], "run_uuid": w["alice_run"]},
        lambda w: {"run_id": w["bob_run"], "runId": w["alice_run"]},
        lambda w: {"runId": w["alice_run"]},
    ],
    ids=["run_id-vs-run_uuid", "snake-and-camel", "camel-only"],
)
def test_id_spellings(bob, world, body):
    payload = {**body(world), "key": "x", "value": 1, "timestamp": 1, "step": 0}
    assert refused(bob.post(f"{API}/runs/log-metric", json=payload))


@pytest.mark.parametrize(
    "path",
    [
        "/api/2.0/mlflow%2Fruns/get",
        "//api/2.0/mlflow/runs/get",
        "/api/2.0/mlflow/experiments/../runs/get",
        "/api/2.0/mlflow/./runs/get",
        "/API/2.0/mlflow/runs/get",
        "/api/2.0/mlflow/runs/get/",
        "/api/2.0/mlflow/runs/get;x=1",
        "/ajax-api/2.0/mlflow/runs/get",
    ],
)
def test_path_tricks(authz_stack, world, path):
    raw = f"{authz_stack.url}{path}?run_id={world['alice_run']}"
    headers = {"Authorization": f"Bearer {authz_stack.token(*BOB)}"}
    with httpx.Client() as http:
        response = http.send(http.build_request("GET", httpx.URL(raw), headers=headers))
    assert refused(response), (path, response.status_code, response.text)


def test_method_override_headers_are_refused(bob, world):
    response = bob.post(
        f"{API}/runs/get",
        json={"run_id": world["alice_run"]},
        headers={"X-HTTP-Method-Override": "GET"},
    )
    assert refused(response)


def test_spoofed_identity_headers_change_nothing(authz_stack, bob, world):
    forged = sign_identity(
        Principal("x", "alice-adv", groups=("vision",)), "GET", f"{API}/runs/get", b"wrong" * 8
    )
    response = bob.get(
        f"{API}/runs/get",
        params={"run_id": world["alice_run"]},
        headers={
            "X-Forwarded-User": "alice-adv",
            "X-Cedarflow-Identity": forged,
            "X-Forwarded-Groups": "admins",
        },
    )
    assert response.status_code == 403
    no_token = httpx.get(
        f"{authz_stack.url}{API}/runs/get",
        params={"run_id": world["alice_run"]},
        headers={"X-Cedarflow-Identity": forged, "X-Forwarded-User": "alice-adv"},
    )
    assert no_token.status_code == 401


def test_graphql_is_checked_per_field(authz_stack, bob, world):
    def query(text: str, variables: dict | None = None) -> dict:
        return {"query": text, "variables": variables or {}}

    get_run = (
        "query Q($i: MlflowGetRunInput) { mlflowGetRun(input: $i) { run { info { runId } } } }"
    )
    mine = query(get_run, {"i": {"runId": world["bob_run"]}})
    response = bob.post("/graphql", json=mine)
    assert "data" in response.json(), (response.status_code, response.text)
    assert response.json()["data"]["mlflowGetRun"]["run"], response.text
    theirs = query(get_run, {"i": {"runId": world["alice_run"]}})
    assert bob.post("/graphql", json=theirs).status_code == 403
    both = query(
        "query Q($r: MlflowGetRunInput, $s: MlflowSearchRunsInput) {"
        " a: mlflowGetRun(input: $r) { run { info { runId } } }"
        " b: mlflowSearchRuns(input: $s) { runs { info { runId } } } }",
        {"r": {"runId": world["bob_run"]}, "s": {"experimentIds": [world["alice_exp"]]}},
    )
    assert bob.post("/graphql", json=both).status_code == 403
    nested = query(
        "query Q($i: MlflowGetRunInput) { mlflowGetRun(input: $i) { run { modelVersions "
        "{ version } } } }",  # no model name to decide each version on
        {"i": {"runId": world["bob_run"]}},
    )
    assert bob.post("/graphql", json=nested).status_code == 403
    mutation = query('mutation { testMutation(inputString: "x") { output } }')
    assert bob.post("/graphql", json=mutation).status_code == 403
    other = query("{ mlflowSearchModelVersions(input: {}) { modelVersions { name } } }")
    assert bob.post("/graphql", json=other).status_code == 403


def test_graphql_on_a_forbidden_run_by_post_or_get(bob, world):
    run_id = world["alice_run"]
    query = f'{{ mlflowGetRun(input: {{runId: "{run_id}"}}) {{ run {{ info {{ runId }} }} }} }}'
    assert bob.post("/graphql", json={"query": query}).status_code == 403
    assert bob.get("/graphql", params={"query": query}).status_code == 403


@pytest.mark.parametrize(
    "path",
    [
        "/api/2.0/mlflow-artifacts/artifacts/{alice_exp}/{alice_run}/artifacts/x.txt",
        "/api/2.0/mlflow-artifacts/artifacts/{bob_exp}/../{alice_exp}/x.txt",
        "/api/2.0/mlflow-artifacts/artifacts/{bob_exp}/%2e%2e/{alice_exp}/x.txt",
        "/api/2.0/mlflow-artifacts/artifacts/%3{alice_exp}/x.txt",
        "/ajax-api/2.0/mlflow-artifacts/artifacts/{alice_exp}/x.txt",
    ],
)
def test_artifact_paths_are_decided_on_their_experiment(authz_stack, world, path):
    target = path.format(**world)
    headers = {"Authorization": f"Bearer {authz_stack.token(*BOB)}"}
    with httpx.Client() as http:
        for method in ("GET", "PUT", "DELETE"):
            response = http.send(
                http.build_request(
                    method, httpx.URL(authz_stack.url + target), headers=headers, content=b"x"
                )
            )
            assert refused(response), (method, target, response.status_code)


def test_artifact_listing_of_a_forbidden_experiment(bob, world):
    response = bob.get("/api/2.0/mlflow-artifacts/artifacts", params={"path": world["alice_exp"]})
    assert response.status_code == 403


def test_search_across_forbidden_experiments_is_narrowed(bob, world):
    both = [world["bob_exp"], world["alice_exp"]]
    runs = bob.post(f"{API}/runs/search", json={"experiment_ids": both}).json().get("runs", [])
    assert {r["info"]["run_id"] for r in runs} == {world["bob_run"]}
    only_alice = bob.post(f"{API}/runs/search", json={"experiment_ids": [world["alice_exp"]]})
    assert only_alice.status_code == 200 and only_alice.json() == {}
    models = bob.post(f"{API}/logged-models/search", json={"experiment_ids": both})
    assert models.status_code == 200 and "adv-alice" not in models.text


@pytest.mark.parametrize(
    "source",
    [
        "runs:/{alice_run}/model",
        "mlflow-artifacts:/{alice_exp}/{alice_run}/artifacts/model",
        "file:///etc",
        "s3://someone-elses-bucket/model",
    ],
)
def test_model_version_source_must_be_readable(bob, world, source):
    response = bob.post(
        f"{API}/model-versions/create",
        json={"name": "adv-bob-model", "source": source.format(**world)},
    )
    assert response.status_code == 403, response.text


def test_artifact_location_is_refused_to_non_admins(bob):
    response = bob.post(
        f"{API}/experiments/create", json={"name": "adv-bob-2", "artifact_location": "/tmp/x"}
    )
    assert response.status_code == 403


def test_the_handler_tiers_port_refuses_direct_calls(authz_stack, world):
    url = f"{authz_stack.handler_url}{API}/runs/get"
    assert httpx.get(url, params={"run_id": world["alice_run"]}).status_code == 401
    forged = sign_identity(Principal("x", "bob-adv"), "GET", f"{API}/runs/get", b"k" * 32)
    response = httpx.get(
        url, params={"run_id": world["alice_run"]}, headers={"X-Cedarflow-Identity": forged}
    )
    assert response.status_code == 401


def test_bob_cannot_grant_himself_access(bob, world):
    response = bob.post(
        "/api/3.0/mlflow/users/permissions/grant",
        json={
            "username": "bob-adv",
            "resource_type": "experiment",
            "resource_id": world["alice_exp"],
            "permission": "MANAGE",
        },
    )
    assert response.status_code == 403
    listing = bob.get(
        "/api/3.0/cedarflow/permissions/list",
        params={"resource_type": "experiment", "resource_id": world["alice_exp"]},
    )
    assert listing.status_code == 403
