"""An ordinary MLflow program: `write EXPERIMENT` logs a run, a model and an artifact; `read
RUN_ID` reads them back. It reads MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN like any MLflow
program and prints what it found as one JSON line."""

import json
import sys
import tempfile
from pathlib import Path

import mlflow
import numpy as np
from mlflow import MlflowClient
from sklearn.linear_model import LinearRegression


def write(experiment_name: str) -> dict:
    mlflow.set_experiment(experiment_name)
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", "0.5")
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        with tempfile.TemporaryDirectory() as folder:
            notes = Path(folder) / "notes.txt"
            notes.write_text("trained on the emulator")
            mlflow.log_artifact(str(notes), artifact_path="docs")
        features = np.array([[0.0], [1.0], [2.0]])
        model = LinearRegression().fit(features, np.array([1.0, 3.0, 5.0]))
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=experiment_name)
    return {
        "experiment_id": run.info.experiment_id,
        "run_id": run.info.run_id,
        "model_uri": info.model_uri,
        "version": info.registered_model_version,
    }


def read(run_id: str, model_uri: str) -> dict:
    client = MlflowClient()
    run = client.get_run(run_id)
    with tempfile.TemporaryDirectory() as folder:
        notes = Path(client.download_artifacts(run_id, "docs/notes.txt", folder)).read_text()
    model = mlflow.pyfunc.load_model(model_uri)
    return {
        "params": run.data.params,
        "history": [m.value for m in client.get_metric_history(run_id, "loss")],
        "artifacts": sorted(a.path for a in client.list_artifacts(run_id, "docs")),
        "notes": notes,
        "prediction": float(model.predict(np.array([[3.0]]))[0]),
    }


if __name__ == "__main__":
    if sys.argv[1] == "write":
        print(json.dumps(write(sys.argv[2])))
    else:
        print(json.dumps(read(sys.argv[2], sys.argv[3])))
