"""The run page's GraphQL query through the gateway: a run's registered-model versions are
shown only for the models the caller may read (the run page loads for every reader), and the
field stays refused anywhere else or in a shape the answer could not be checked in."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

OWNER = ("gina-owner", ("gq-owners",))
READER = ("hank-reader", ("gq-readers",))
GRANT = "/api/3.0/cedarflow/permissions/grant"
# The UI's query (MLflow 3.17.2, ExperimentRunTracking), trimmed to the fields that matter here.
GET_RUN = """query GetRun($data: MlflowGetRunInput!) {
  mlflowGetRun(input: $data) {
    apiError { code message }
    run {
      info { runUuid experimentId }
      modelVersions { status version name source }
      data { params { key value } }
    }
  }
}"""


@pytest.fixture(scope="module")
def world(authz_stack):
    with authz_stack.as_user(*OWNER):
        client = MlflowClient()
        experiment = client.create_experiment("gq-run-versions")
        run = client.create_run(experiment).info
        for name in ("gq-shared-model", "gq-private-model"):
            client.create_registered_model(name)
            client.create_model_version(name, f"{run.artifact_uri}/model", run_id=run.run_id)
    with authz_stack.http(*OWNER) as http:
        for kind, resource in (
            ("experiment", experiment),
            ("registered_model", "gq-shared-model"),
        ):
            body = {"resource_type": kind, "resource_id": resource, "group": "gq-readers"}
            granted = http.post(GRANT, json=body | {"role": "reader"})
            assert granted.status_code == 200, granted.text
    return {"run_id": run.run_id}


def get_run(http, run_id: str, query: str = GET_RUN):
    return http.post("/graphql", json={"query": query, "variables": {"data": {"runId": run_id}}})


def version_names(answer) -> list[str]:
    assert answer.status_code == 200, answer.text
    run = answer.json()["data"]["mlflowGetRun"]["run"]
    return sorted(v["name"] for v in run["modelVersions"] or [])


def test_a_reader_sees_the_run_with_the_versions_of_models_it_may_read(authz_stack, world):
    with authz_stack.http(*READER) as http:
        assert version_names(get_run(http, world["run_id"])) == ["gq-shared-model"]


def test_the_owner_sees_every_version(authz_stack, world):
    with authz_stack.http(*OWNER) as http:
        assert version_names(get_run(http, world["run_id"])) == [
            "gq-private-model",
            "gq-shared-model",
        ]


@pytest.mark.parametrize(
    "query",
    [
        # an alias would move another field under the key the answer is checked on
        "query Q($data: MlflowGetRunInput!) { mlflowGetRun(input: $data) "
        "{ run { modelVersions { name: source } } } }",
        "query Q($data: MlflowGetRunInput!) { mlflowGetRun(input: $data) "
        "{ run { modelVersions { version } } } }",
        "query Q($data: MlflowGetRunInput!) { mlflowGetRun(input: $data) "
        "{ run { ...F } } } fragment F on MlflowRunExtension { modelVersions { name } }",
        "query Q($data: MlflowGetRunInput!) { mlflowGetRun(input: $data) "
        "{ run { modelVersions { name ... on MlflowModelVersion { source } } } } }",
    ],
)
def test_model_versions_in_an_uncheckable_shape_stay_refused(authz_stack, world, query):
    with authz_stack.http(*READER) as http:
        assert get_run(http, world["run_id"], query).status_code == 403
