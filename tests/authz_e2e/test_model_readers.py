"""Readers of a registered model load its versions' files, through the real MLflow client.

Dana registers a version from her run's own artifacts (`runs:/<run>/model`, not a logged
model): the store keeps its files in the run's artifact folder. Erin may read the registered
model only: she loads the version, and still cannot list or download the rest of the run.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.server import get_app_client
from mlflow_calls import denied
from sklearn.linear_model import LogisticRegression

DANA = ("dana", ("forecasting",))
ERIN = ("erin", ("support",))
MODEL = "dana-model"


@pytest.fixture(scope="module")
def version(authz_stack, tmp_path_factory):
    """Version 1 of MODEL, registered from files Dana logged as her run's artifacts."""
    folder = tmp_path_factory.mktemp("dana-model") / "model"
    classifier = LogisticRegression().fit(np.array([[0.0], [1.0]]), np.array([0, 1]))
    mlflow.sklearn.save_model(classifier, str(folder))
    notes = folder.parent / "notes.txt"
    notes.write_text("not part of the model")
    with authz_stack.as_user(*DANA):
        client = MlflowClient()
        experiment_id = client.create_experiment("dana-exp")
        run = client.create_run(experiment_id)
        client.log_artifacts(run.info.run_id, str(folder), artifact_path="model")
        client.log_artifact(run.info.run_id, str(notes))
        client.create_registered_model(MODEL)
        created = client.create_model_version(
            MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
        )
        assert created.version == "1"
    with authz_stack.as_user(*ERIN):
        MlflowClient().search_experiments()  # the gateway has seen Erin: she may be named
    with authz_stack.as_user(*DANA):  # Erin reads the registered model, nothing else
        get_app_client("basic-auth", authz_stack.url).grant_user_permission(
            "erin", "registered_model", MODEL, "READ"
        )
    return {"experiment_id": experiment_id, "run_id": run.info.run_id}


def test_a_model_reader_loads_a_version_registered_from_a_run(authz_stack, version):
    with authz_stack.as_user(*ERIN):
        loaded = mlflow.pyfunc.load_model(f"models:/{MODEL}/1")
        assert list(loaded.predict(np.array([[1.0]]))) == [1]


def test_the_rest_of_the_run_stays_closed_to_a_model_reader(authz_stack, version, tmp_path):
    run_id, experiment_id = version["run_id"], version["experiment_id"]
    run_files = f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"
    with authz_stack.as_user(*ERIN):
        client = MlflowClient()
        assert denied(lambda: client.get_run(run_id))
        assert denied(lambda: client.list_artifacts(run_id))
        assert denied(lambda: client.download_artifacts(run_id, "notes.txt", str(tmp_path)))
        assert denied(
            lambda: mlflow.artifacts.download_artifacts(f"{run_files}/notes.txt", dst_path=tmp_path)
        )
        assert denied(lambda: mlflow.artifacts.list_artifacts(run_files))


def test_an_outsider_loads_nothing(authz_stack, version):
    with authz_stack.as_user("frank", ("elsewhere",)):
        assert denied(lambda: mlflow.pyfunc.load_model(f"models:/{MODEL}/1"))
