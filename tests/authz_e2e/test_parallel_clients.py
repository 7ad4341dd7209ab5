"""Many MLflow clients at once through the gateway: names stay unique, versions dense."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import mlflow
from mlflow import MlflowClient

OWNER = ("olga", ("forecasting",))
_TIMEOUT_S = 300


def together(count: int, task) -> list:
    """`task(index)` in `count` threads released at once; their results, in order."""
    barrier = threading.Barrier(count)

    def start(index: int):
        barrier.wait()
        return task(index)

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(start, index) for index in range(count)]
        return [future.result(timeout=_TIMEOUT_S) for future in futures]


def test_parallel_set_experiment_gives_every_caller_one_experiment(authz_stack):
    with authz_stack.as_user(*OWNER):
        found = together(8, lambda _: mlflow.set_experiment("olga-shared").experiment_id)
        assert len(set(found)) == 1
        named = MlflowClient().search_experiments(filter_string="name = 'olga-shared'")
        assert [e.experiment_id for e in named] == found[:1]


def test_parallel_register_model_numbers_versions_densely(authz_stack, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("flavors: {}\n")
    with authz_stack.as_user(*OWNER):
        client = MlflowClient()
        experiment_id = client.create_experiment("olga-registrations")
        run_id = client.create_run(experiment_id).info.run_id
        client.log_artifacts(run_id, str(tmp_path / "model"), artifact_path="model")
        registered = together(
            20, lambda _: mlflow.register_model(f"runs:/{run_id}/model", "olga-model").version
        )
        assert sorted(int(v) for v in registered) == list(range(1, 21))
        versions = client.search_model_versions("name = 'olga-model'", max_results=100)
        assert sorted(int(mv.version) for mv in versions) == list(range(1, 21))
        assert [m.name for m in client.search_registered_models("name = 'olga-model'")] == [
            "olga-model"
        ]
