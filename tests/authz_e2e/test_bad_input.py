"""Bad input through the whole stack gets an MLflow-style 4xx, never a 500.

Each case once answered 500 (from the gateway, from MLflow's handlers or from the DynamoDB
store); each now answers 4xx JSON with the error code MLflow uses where it answers 4xx.
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

OWNER = ("ivy", ("ivy-team",))
MODEL_READER = ("jules", ("jules-team",))
ADMIN = ("root-ivy", ("admins",))
API = "/api/2.0/mlflow"
DEEP = "[" * 200_000


@pytest.fixture(scope="module")
def world(authz_stack, tmp_path_factory):
    with authz_stack.as_user(*OWNER):
        client = MlflowClient()
        experiment_id = client.create_experiment("bad-input")
        run_id = client.create_run(experiment_id).info.run_id
        client.log_metric(run_id, "loss", 0.5)
        model_file = tmp_path_factory.mktemp("model") / "MLmodel"
        model_file.write_text("flavors: {}\n")
        client.log_artifact(run_id, str(model_file), artifact_path="model")
        client.create_registered_model("bad-input-model")
        version = client.create_model_version(
            "bad-input-model", f"runs:/{run_id}/model", run_id
        ).version
    with authz_stack.http(*MODEL_READER) as reader:  # signed in once: grantable by name
        assert reader.get(f"{API}/experiments/search", params={"max_results": 1}).is_success
    return {"experiment_id": experiment_id, "run_id": run_id, "version": version}


def assert_mlflow_4xx(response, status: int = 400, code: str = "INVALID_PARAMETER_VALUE"):
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.json()["error_code"] == code
    assert "Traceback" not in response.text


def test_json_nested_deeper_than_a_parser_goes_is_a_400(authz_stack, world):
    headers = {"Content-Type": "application/json"}
    targets = ["/graphql", "/api/3.0/mlflow/users/permissions/grant", f"{API}/runs/log-metric"]
    for who in (OWNER, ADMIN):  # administrators' GraphQL too: it is not checked per field
        with authz_stack.http(*who) as http:
            for path in targets:
                assert_mlflow_4xx(http.post(path, content=DEEP, headers=headers))
            nested = '{"query": "' + "{a" * 5000 + '"}'
            assert_mlflow_4xx(http.post("/graphql", content=nested, headers=headers))


def test_graphql_malformed_for_an_administrator_is_refused_not_a_500(authz_stack):
    with authz_stack.http(*ADMIN) as admin:
        assert_mlflow_4xx(admin.post("/graphql", json={"query": "query {"}))
        assert_mlflow_4xx(admin.post("/graphql", json=["not", "an", "object"]))
        assert_mlflow_4xx(admin.get("/graphql"), 403, "PERMISSION_DENIED")
        fine = admin.post("/graphql", json={"query": "query { __typename }"})
        assert fine.status_code == 200, fine.text


def test_metric_history_bulk_with_a_non_integer_max_results_is_a_400(authz_stack, world):
    with authz_stack.http(*OWNER) as http:
        response = http.get(
            "/ajax-api/2.0/mlflow/metrics/get-history-bulk",
            params={"run_id": world["run_id"], "metric_key": "loss", "max_results": "abc"},
        )
        assert_mlflow_4xx(response)
        fine = http.get(
            "/ajax-api/2.0/mlflow/metrics/get-history-bulk",
            params={"run_id": world["run_id"], "metric_key": "loss", "max_results": "5"},
        )
        assert fine.status_code == 200 and fine.json()["metrics"][0]["value"] == 0.5


@pytest.mark.parametrize(
    "extra",
    [{"max_results": "0.0"}, {"max_results": "x"}, {"start_step": "1.5", "end_step": "2"}],
)
def test_metric_history_bulk_interval_with_non_integer_numbers_is_a_400(authz_stack, world, extra):
    url = f"{API}/metrics/get-history-bulk-interval"
    wanted = {"run_ids": world["run_id"], "metric_key": "loss"}
    with authz_stack.http(*OWNER) as http:
        assert_mlflow_4xx(http.get(url, params=wanted | extra))
        fine = http.get(
            url, params=wanted | {"max_results": "5", "start_step": "0", "end_step": "9"}
        )
        assert fine.status_code == 200 and fine.json()["metrics"][0]["value"] == 0.5


@pytest.mark.parametrize("raw", ["1e999", "-1e999", "[]", "{}", '"1e2"'])
def test_a_search_with_an_impossible_max_results_is_a_400(authz_stack, raw):
    body = f'{{"max_results": {raw}}}'
    with authz_stack.http(*OWNER) as http:
        for path in (f"{API}/experiments/search", f"{API}/runs/search"):
            response = http.post(path, content=body, headers={"Content-Type": "application/json"})
            assert_mlflow_4xx(response)


def test_a_registered_model_name_longer_than_a_dynamodb_key_is_a_400(authz_stack):
    name = "m" * 5000
    with authz_stack.http(*OWNER) as http:
        assert_mlflow_4xx(http.post(f"{API}/registered-models/create", json={"name": name}))
        # the gateway reads the model version's facts before deciding: no 500 there either
        for call in (
            http.get(f"{API}/model-versions/get", params={"name": name, "version": "1"}),
            http.post(f"{API}/model-versions/set-tag", json={"name": name, "version": "1",
                                                             "key": "k", "value": "v"}),
        ):  # fmt: skip
            assert call.status_code in (400, 403), call.text[:300]
            assert "error_code" in call.json()


def test_a_version_registered_from_a_runs_uri_serves_its_artifacts(authz_stack, world):
    with authz_stack.http(*OWNER) as http:
        uri = http.get(
            f"{API}/model-versions/get-download-uri",
            params={"name": "bad-input-model", "version": world["version"]},
        ).json()["artifact_uri"]
        expected = f"{world['experiment_id']}/{world['run_id']}/artifacts/model"
        assert uri.startswith("mlflow-artifacts:") and uri.endswith(expected)
        version = http.get(
            f"{API}/model-versions/get",
            params={"name": "bad-input-model", "version": world["version"]},
        ).json()["model_version"]
        assert version["source"] == f"runs:/{world['run_id']}/model"  # kept as given
        granted = http.post(
            "/api/3.0/mlflow/users/permissions/grant",
            json={"username": MODEL_READER[0], "resource_type": "registered_model",
                  "resource_id": "bad-input-model", "permission": "READ"},
        )  # fmt: skip
        assert granted.status_code == 200, granted.text
    query = {"name": "bad-input-model", "version": world["version"], "path": "MLmodel"}
    for who in (OWNER, MODEL_READER):  # the reader may not read the run, only the model
        with authz_stack.http(*who) as http:
            response = http.get("/model-versions/get-artifact", params=query)
            assert response.status_code == 200, response.text[:300]
            assert response.text == "flavors: {}\n"
    with authz_stack.http(*MODEL_READER) as http:
        run = http.get(f"{API}/runs/get", params={"run_id": world["run_id"]})
        assert run.status_code == 403


def test_model_version_artifact_without_a_path_is_a_json_400(authz_stack, world):
    query = {"name": "bad-input-model", "version": world["version"]}
    with authz_stack.http(*OWNER) as http:
        assert_mlflow_4xx(http.get("/model-versions/get-artifact", params=query))
        assert_mlflow_4xx(http.get("/get-artifact", params={"run_id": world["run_id"]}))
