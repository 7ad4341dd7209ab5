"""An ordinary MLflow training script: it knows nothing about Cedarflow.

It reads MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN from the environment like any MLflow
program and prints what it found as one JSON line, for the test that runs it.
"""

import json
import sys
import time

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

experiment_name = sys.argv[1]
mlflow.set_experiment(experiment_name)
client = MlflowClient()

run_ids = {}
for lr, depth in [(0.1, 3), (0.01, 5), (0.001, 7)]:
    with mlflow.start_run(run_name=f"lr-{lr}") as run:
        mlflow.log_param("lr", lr)
        mlflow.log_params({"depth": depth, "optimizer": "adam"})
        mlflow.set_tag("team", "vision")
        mlflow.set_tags({"stage": "dev", "lr_tag": str(lr)})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1) + lr, step=step)
        mlflow.log_metrics({"accuracy": 1 - lr, "f1": 0.5 + depth / 100})
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("batch_metric", float(i), now, i) for i in range(10)],
            params=[Param("batch_param", "x")],
            tags=[RunTag("batch_tag", "y")],
        )
        run_ids[lr] = run.info.run_id

experiment = mlflow.get_experiment_by_name(experiment_name)
found = mlflow.search_runs(
    experiment_ids=[experiment.experiment_id],
    filter_string="params.optimizer = 'adam' and metrics.accuracy > 0.95",
    order_by=["metrics.accuracy DESC"],
    output_format="list",
)
history = client.get_metric_history(run_ids[0.1], "loss")
batch_history = client.get_metric_history(run_ids[0.1], "batch_metric")
run = client.get_run(run_ids[0.1])
print(
    json.dumps(
        {
            "experiment_id": experiment.experiment_id,
            "run_ids": {str(k): v for k, v in run_ids.items()},
            "search": [r.info.run_id for r in found],
            "history": [(m.step, m.value) for m in history],
            "batch_history_len": len(batch_history),
            "params": run.data.params,
            "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
            "metrics": run.data.metrics,
            "user_id": run.info.user_id,
        }
    )
)
