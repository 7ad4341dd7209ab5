"""Permanent deletion: MLflow's own `mlflow gc` command against our store on dynalite removes
deleted runs, experiments and logged models with every item they had (histories, metric
buckets, params, tags, inputs, locators, name claims) and their artifacts, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from mlflow.entities import Dataset, DatasetInput, Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

from store.dynamo.table import DynamoTable
from store.tracking import DynamoTrackingStore


@pytest.fixture
def uri(dynalite_endpoint: str) -> str:
    return f"dynamodb://{dynalite_endpoint.removeprefix('http://')}/gc{uuid.uuid4().hex[:8]}"


@pytest.fixture
def tracking(uri: str, tmp_path: Path) -> DynamoTrackingStore:
    return DynamoTrackingStore(uri, str(tmp_path / "artifacts"))


def mlflow_gc(uri: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    command = [sys.executable, "-m", "mlflow", "gc", "--backend-store-uri", uri, *args]
    return subprocess.run(
        command,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def full_run(store: DynamoTrackingStore, experiment_id: str, name: str) -> str:
    run_id = store.create_run(experiment_id, "u", 1000, [RunTag("team", "x")], name).info.run_id
    metrics = [Metric(f"m{k}", float(step), step, step) for k in range(30) for step in range(3)]
    store.log_batch(run_id, metrics, [Param("lr", "0.1")], [RunTag("t", "v")])
    dataset = Dataset("d", name, "local", "file:///d", None, None)
    store.log_inputs(run_id, [DatasetInput(dataset, [])])
    artifacts = Path(store.get_run(run_id).info.artifact_uri)
    artifacts.mkdir(parents=True)
    (artifacts / "model.txt").write_text(name)
    return run_id


def scan(table: DynamoTable) -> list[dict]:
    """Every item of the table (a test-only Scan)."""
    items, request = [], {"TableName": table.name}
    while True:
        page = table._client.scan(**request)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def mentions(items: list[dict], *needles: str) -> list[dict]:
    return [item for item in items if any(n in str(item) for n in needles)]


def test_mlflow_gc_removes_deleted_runs_and_experiments_with_everything_they_had(
    tracking, uri, tmp_path
):
    kept_experiment = tracking.create_experiment("kept")
    doomed_run = full_run(tracking, kept_experiment, "doomed")
    kept_run = full_run(tracking, kept_experiment, "kept")
    tracking.delete_run(doomed_run)
    doomed_experiment = tracking.create_experiment("doomed-experiment")
    inside = [full_run(tracking, doomed_experiment, f"inside-{i}") for i in range(3)]
    tracking.delete_experiment(doomed_experiment)
    model = tracking.create_logged_model(kept_experiment, "m")
    tracking.delete_logged_model(model.model_id)
    doomed_artifacts = [Path(tracking.get_run(r).info.artifact_uri) for r in [doomed_run, *inside]]
    assert mentions(scan(tracking.table), doomed_run)

    done = mlflow_gc(uri, tmp_path)
    assert done.returncode == 0, done.stderr

    items = scan(tracking.table)
    assert mentions(items, doomed_run, *inside, model.model_id) == []
    gone_experiment = [
        i
        for i in items
        if i["pk"]["S"].split("#")[-1] == doomed_experiment and "EXP" in i["pk"]["S"]
    ]
    assert gone_experiment == []
    assert not any(path.exists() for path in doomed_artifacts)
    assert Path(tracking.get_run(kept_run).info.artifact_uri, "model.txt").read_text() == "kept"
    kept = tracking.get_run(kept_run)
    assert len(kept.data.metrics) == 30 and kept.data.params == {"lr": "0.1"}
    assert len(tracking.get_metric_history(kept_run, "m0")) == 3
    with pytest.raises(MlflowException, match="not found"):
        tracking.get_run(doomed_run)
    assert tracking.create_experiment("doomed-experiment")  # the name is free again
    assert [r.info.run_id for r in tracking.search_runs([kept_experiment], "", ViewType.ALL)] == [
        kept_run
    ]


def test_mlflow_gc_refuses_an_active_run_and_respects_older_than(tracking, uri, tmp_path):
    experiment_id = tracking.create_experiment("e")
    active = full_run(tracking, experiment_id, "active")
    recent = full_run(tracking, experiment_id, "recent")
    tracking.delete_run(recent)

    refused = mlflow_gc(uri, tmp_path, "--run-ids", active)
    assert refused.returncode != 0
    assert "is not in `deleted` lifecycle stage" in refused.stderr
    assert tracking.get_run(active).info.lifecycle_stage == "active"

    kept = mlflow_gc(uri, tmp_path, "--older-than", "1d")
    assert kept.returncode == 0, kept.stderr
    assert tracking.get_run(recent).info.lifecycle_stage == "deleted"  # deleted today: kept

    removed = mlflow_gc(uri, tmp_path, "--run-ids", recent)
    assert removed.returncode == 0, removed.stderr
    assert mentions(scan(tracking.table), recent) == []


# The writes of a run's removal: 30 histories, the buckets, the other items, the core, the
# locator. A gc dying at any of them leaves the run listed as deleted until its core goes.
@pytest.mark.parametrize("dies_at", [1, 30, 31, 32, 33, 34])
def test_an_interrupted_removal_is_finished_by_the_next(tracking, monkeypatch, dies_at):
    experiment_id = tracking.create_experiment("e")
    run_id = full_run(tracking, experiment_id, "r")
    tracking.delete_run(run_id)
    tracking.table.parallel_writes = 1  # one write after the other: the failure point is exact
    writes = {"count": 0}

    def failing(original):
        def write(self, *args, **kwargs):
            writes["count"] += 1
            if writes["count"] == dies_at:
                raise ConnectionError("the gc process dies")
            return original(self, *args, **kwargs)

        return write

    for name in ("delete", "batch_write"):
        monkeypatch.setattr(DynamoTable, name, failing(getattr(DynamoTable, name)))
    with pytest.raises(ConnectionError):
        tracking._hard_delete_run(run_id)
    monkeypatch.undo()
    assert mentions(scan(tracking.table), run_id)
    if dies_at < 34:  # the core is there: the next `mlflow gc` finds the run
        assert tracking._get_deleted_runs() == [run_id]
    tracking._hard_delete_run(run_id)
    assert mentions(scan(tracking.table), run_id) == []
    assert tracking._get_deleted_runs() == []


def test_deleted_runs_older_than_match_the_sql_store(tracking, sql_store, monkeypatch):
    import mlflow.store.tracking.sqlalchemy_store as sql_module

    import store.tracking.run_gc as gc_module
    import store.tracking.runs as runs_module

    clock = {"now": 10**12}
    for module in (sql_module, gc_module, runs_module):
        monkeypatch.setattr(module, "get_current_time_millis", lambda: clock["now"])
    by_store = {}
    for store in (tracking, sql_store):
        clock["now"] = 10**12  # the same times in both stores
        experiment_id = store.create_experiment("older")
        ids = []
        for i in range(6):
            run_id = store.create_run(experiment_id, "u", i, [], f"r{i}").info.run_id
            ids.append(run_id)
            if i % 3:
                clock["now"] += 1000 * i
                store.delete_run(run_id)
        store.restore_run(ids[1])
        by_store[store] = ids
    for older_than in (0, 1000, 3000, 10**6):
        expected = sorted(
            by_store[sql_store].index(r) for r in sql_store._get_deleted_runs(older_than)
        )
        actual = sorted(by_store[tracking].index(r) for r in tracking._get_deleted_runs(older_than))
        assert actual == expected, older_than
