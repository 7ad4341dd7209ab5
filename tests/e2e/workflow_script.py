"""An ordinary MLflow 3 workflow (it knows nothing about Cedarflow): train, log, register, alias,
load by alias and predict; register and load a prompt; trace a call and find it. Prints one JSON
line with what it saw."""

import json
import os
import sys
import tempfile

import mlflow
import numpy as np
import requests
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

suffix = sys.argv[1]
model_name, prompt_name = f"clf-{suffix}", f"greeting-{suffix}"
experiment = mlflow.set_experiment(f"workflow-{suffix}")
client = MlflowClient()

X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
y = np.array([0, 0, 0, 1, 1, 1])
with mlflow.start_run() as run:
    model = LogisticRegression().fit(X, y)
    mlflow.log_param("C", model.C)
    mlflow.log_metric("accuracy", model.score(X, y))
    info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
    with tempfile.TemporaryDirectory() as tmp:
        notes = os.path.join(tmp, "notes.txt")
        with open(notes, "w") as f:
            f.write("trained on six points")
        mlflow.log_artifact(notes, artifact_path="docs")

version = mlflow.register_model(info.model_uri, model_name)
client.set_registered_model_alias(model_name, "champion", version.version)
loaded = mlflow.pyfunc.load_model(f"models:/{model_name}@champion")
predictions = loaded.predict(X).tolist()
logged_model = mlflow.get_logged_model(info.model_id)
with tempfile.TemporaryDirectory() as tmp:
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="docs/notes.txt", dst_path=tmp
    )
    with open(local) as f:
        notes_back = f.read()
run_artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "docs")]

mlflow.genai.register_prompt(name=prompt_name, template="Hello {{name}}!")
prompt = mlflow.genai.load_prompt(f"prompts:/{prompt_name}/1")


@mlflow.trace
def add(a, b):
    return a + b


add(2, 3)
mlflow.flush_trace_async_logging()
traces = mlflow.search_traces(locations=[experiment.experiment_id], return_type="list")

# What the MLflow UI asks for when it shows these models and traces.
ui = requests.Session()
ui.headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
base = os.environ["MLFLOW_TRACKING_URI"]
ui_models = ui.post(
    f"{base}/ajax-api/2.0/mlflow/logged-models/search",
    json={
        "experiment_ids": [experiment.experiment_id],
        "order_by": [{"field_name": "creation_time", "ascending": False}],
    },
)
ui_traces = ui.post(
    f"{base}/ajax-api/3.0/mlflow/traces/search",
    json={
        "locations": [{"mlflow_experiment": {"experiment_id": experiment.experiment_id}}],
        "order_by": ["timestamp_ms DESC"],
        "filter": "trace.status = 'OK'",
    },
)
ui_trace_data = ui.get(
    f"{base}/ajax-api/2.0/mlflow/get-trace-artifact",
    params={"request_id": traces[0].info.trace_id if traces else ""},
)

print(
    json.dumps(
        {
            "predictions": predictions,
            "version": version.version,
            "alias_version": client.get_model_version_by_alias(model_name, "champion").version,
            "logged_model_status": str(logged_model.status),
            "logged_model_source_run": logged_model.source_run_id,
            "logged_model_id": logged_model.model_id,
            "run_id": run.info.run_id,
            "notes": notes_back,
            "run_artifacts": run_artifacts,
            "prompt": prompt.format(name="Ada"),
            "ui_models": [m["info"]["model_id"] for m in ui_models.json().get("models", [])],
            "ui_traces": len(ui_traces.json().get("traces", [])),
            "ui_trace_spans": [s["name"] for s in ui_trace_data.json().get("spans", [])],
            "traces": [
                {
                    "name": t.info.tags.get("mlflow.traceName"),
                    "spans": [s.name for s in t.data.spans],
                }
                for t in traces
            ],
        }
    )
)
