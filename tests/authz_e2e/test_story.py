"""Alice, Carol and Bob through the real MLflow client, against the running stack.

Alice (group vision) creates an experiment and a registered model; Carol (vision) may add
runs to the experiment but only read the model; Bob (nlp) sees neither; Alice makes the
experiment private and Carol loses it; Alice grants Bob reader on the model with MLflow's own
permissions client; a policy edit under the running gateway flips exactly one decision.
"""

from __future__ import annotations

import time

import httpx
import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.server import get_app_client
from mlflow_calls import denied
from sklearn.linear_model import LogisticRegression

ALICE = ("alice", ("vision",))
CAROL = ("carol", ("vision",))
BOB = ("bob", ("nlp",))
MODEL = "alice-model"


@pytest.fixture(scope="module")
def world(authz_stack):
    """Alice's experiment with one run and a logged model registered as MODEL@champion."""
    with authz_stack.as_user(*ALICE):
        client = MlflowClient()
        experiment_id = client.create_experiment("alice-exp")
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_metric("acc", 0.9)
            model = LogisticRegression().fit(np.array([[0.0], [1.0]]), np.array([0, 1]))
            info = mlflow.sklearn.log_model(model, name="clf")
        version = mlflow.register_model(f"models:/{info.model_id}", MODEL)
        client.set_registered_model_alias(MODEL, "champion", version.version)
    return {"experiment_id": experiment_id, "run_id": run.info.run_id, "model_id": info.model_id}


def test_carol_adds_runs_to_alices_experiment_but_only_reads_her_model(authz_stack, world):
    with authz_stack.as_user(*CAROL):
        client = MlflowClient()
        run = client.create_run(world["experiment_id"])
        client.log_metric(run.info.run_id, "loss", 0.1)
        assert client.get_run(world["run_id"]).data.metrics["acc"] == 0.9
        assert client.get_registered_model(MODEL).name == MODEL
        assert denied(lambda: client.set_registered_model_tag(MODEL, "k", "v"))
        assert denied(lambda: client.delete_registered_model(MODEL))


def test_bob_sees_neither_in_the_client_searches_or_graphql(authz_stack, world):
    with authz_stack.as_user(*BOB):
        client = MlflowClient()
        assert denied(lambda: client.get_experiment(world["experiment_id"]))
        assert denied(lambda: client.get_run(world["run_id"]))
        assert denied(lambda: client.get_registered_model(MODEL))
        assert denied(lambda: client.get_experiment_by_name("alice-exp"))
        names = [e.name for e in client.search_experiments()]
        assert "alice-exp" not in names
        assert client.search_runs([world["experiment_id"]]) == []
        assert MODEL not in [m.name for m in client.search_registered_models()]
        assert MODEL not in [v.name for v in client.search_model_versions()]
    with authz_stack.http(*BOB) as http:
        experiment_id = world["experiment_id"]
        query = {
            "query": f'{{ mlflowGetExperiment(input: {{experimentId: "{experiment_id}"}}) '
            "{ experiment { name } } }"
        }
        response = http.post("/graphql", json=query)
        assert response.status_code == 403
        assert "alice-exp" not in response.text


def test_private_experiment_drops_group_members(authz_stack, world):
    experiment_id = world["experiment_id"]
    with authz_stack.http(*ALICE) as http:
        private = http.post(
            "/api/3.0/cedarflow/permissions/private",
            json={"experiment_id": experiment_id, "private": True},
        )
        assert private.status_code == 200, private.text
    with authz_stack.as_user(*CAROL):
        client = MlflowClient()
        assert denied(lambda: client.get_experiment(experiment_id))
        assert client.search_runs([experiment_id]) == []
        assert client.get_registered_model(MODEL).name == MODEL  # the model is not private
    with authz_stack.http(*CAROL) as http:  # a group member cannot undo it
        undo = http.post(
            "/api/3.0/cedarflow/permissions/private",
            json={"experiment_id": experiment_id, "private": False},
        )
        assert undo.status_code == 403
    with authz_stack.as_user(*ALICE):
        assert MlflowClient().get_experiment(experiment_id).name == "alice-exp"
    with authz_stack.http(*ALICE) as http:
        http.post(
            "/api/3.0/cedarflow/permissions/private",
            json={"experiment_id": experiment_id, "private": False},
        ).raise_for_status()
    with authz_stack.as_user(*CAROL):
        assert MlflowClient().get_experiment(experiment_id).name == "alice-exp"


def test_alice_grants_bob_reader_with_mlflows_permissions_client(authz_stack, world):
    with authz_stack.as_user(*BOB):
        MlflowClient().search_experiments()  # Bob has signed in once: the gateway knows him
        assert denied(lambda: MlflowClient().get_registered_model(MODEL))
    with authz_stack.as_user(*CAROL):  # a reader may not grant
        carol_admin = get_app_client("basic-auth", authz_stack.url)
        assert denied(
            lambda: carol_admin.grant_user_permission("bob", "registered_model", MODEL, "READ")
        )
    with authz_stack.as_user(*ALICE):
        auth = get_app_client("basic-auth", authz_stack.url)
        auth.grant_user_permission("bob", "registered_model", MODEL, "READ")
        granted = auth.get_user_permission("bob", "registered_model", MODEL)
        assert granted.permission == "READ"
    with authz_stack.as_user(*BOB):
        client = MlflowClient()
        assert client.get_registered_model(MODEL).name == MODEL
        assert denied(lambda: client.get_experiment(world["experiment_id"]))
        assert denied(lambda: client.set_registered_model_tag(MODEL, "k", "v"))
        # a model reader may load the model its versions were registered from
        loaded = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
        assert list(loaded.predict(np.array([[1.0]]))) == [1]
    changes = [r for r in authz_stack.audit_lines() if r["type"] == "binding_change"]
    assert any(r["change"] == "grant" and r["resource"]["id"] == MODEL for r in changes)


def test_policy_edit_under_the_running_gateway_flips_one_decision(authz_stack, world):
    reader_file = authz_stack.policies_dir / "20_model_reader.cedar"
    original = reader_file.read_text()
    with authz_stack.as_user(*CAROL):
        client = MlflowClient()
        assert denied(lambda: client.set_registered_model_tag(MODEL, "team", "vision"))
        edited = original.replace(
            'Action::"GetModelVersionArtifact"',
            'Action::"GetModelVersionArtifact",\n    Action::"SetRegisteredModelTag"',
        )
        assert edited != original
        revision = authz_stack.pipeline.authorizer.policies.revision
        reader_file.write_text(edited)
        try:
            for _ in range(100):  # bounded: the store polls every second
                if authz_stack.pipeline.authorizer.policies.revision != revision:
                    break
                time.sleep(0.1)
            client.set_registered_model_tag(MODEL, "team", "vision")  # now allowed
            assert denied(lambda: client.delete_registered_model_tag(MODEL, "team"))
            assert denied(lambda: client.delete_registered_model(MODEL))
        finally:
            reader_file.write_text(original)
    with authz_stack.as_user(*BOB):  # the experiment was never the subject of the edit
        assert denied(lambda: MlflowClient().get_experiment(world["experiment_id"]))


def test_every_decision_is_audited(authz_stack, world):
    lines = [r for r in authz_stack.audit_lines() if r["type"] == "decision"]
    assert lines
    for field in ("time", "request_id", "principal", "groups", "action", "resource",
                  "decision", "policies", "policy_revision", "latency_ms"):  # fmt: skip
        assert field in lines[-1]
    assert any(r["decision"] == "deny" and r["username"] == "bob" for r in lines)
    assert httpx.get(f"{authz_stack.url}/metrics").status_code == 401
    with authz_stack.http("ada", ["admins"]) as admin:
        metrics = admin.get("/metrics").text
    assert 'cedarflow_decisions_total{action="GetRun",outcome="deny"}' in metrics
    assert "cedarflow_decide_seconds_count" in metrics
    assert "cedarflow_upstream_seconds_count" in metrics
