"""Runs, params, tags, metrics, log_batch and inputs in the DynamoDB tracking store (moto)."""

from __future__ import annotations

import math

import pytest
from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LoggedModelOutput,
    Metric,
    Param,
    RunStatus,
    RunTag,
    ViewType,
)
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_USER
from store_support import ARTIFACT_ROOT, error_code

from store.handler.identity import Principal, bind_principal


@pytest.fixture
def run(moto_store):
    experiment_id = moto_store.create_experiment("runs")
    return moto_store.create_run(experiment_id, "alice", 1000, [RunTag("a", "1")], "first")


def test_create_and_get_run(moto_store, run):
    assert run.info.run_name == "first"
    assert run.info.status == "RUNNING"
    assert run.info.artifact_uri == f"{ARTIFACT_ROOT}/1/{run.info.run_id}/artifacts"
    fetched = moto_store.get_run(run.info.run_id)
    assert fetched.data.tags == {"a": "1", "mlflow.runName": "first"}
    assert fetched.info.user_id == "alice" and fetched.info.start_time == 1000
    assert error_code(moto_store.get_run, "nope") == "RESOURCE_DOES_NOT_EXIST"


def test_run_name_from_tag_and_conflicting_names(moto_store):
    experiment_id = moto_store.create_experiment("names")
    tagged = moto_store.create_run(experiment_id, "u", 1, [RunTag("mlflow.runName", "t")], None)
    assert tagged.info.run_name == "t"
    generated = moto_store.create_run(experiment_id, "u", 1, [], None)
    assert generated.data.tags["mlflow.runName"] == generated.info.run_name != ""
    assert error_code(
        moto_store.create_run, experiment_id, "u", 1, [RunTag("mlflow.runName", "a")], "b"
    ) == ("INVALID_PARAMETER_VALUE")


def test_runs_are_attributed_to_the_authenticated_caller(moto_store):
    experiment_id = moto_store.create_experiment("who")
    principal = Principal(subject="sub-1", username="carol")
    with bind_principal(principal):
        run = moto_store.create_run(experiment_id, "mallory", 1, [RunTag(MLFLOW_USER, "x")], "r")
    assert run.info.user_id == "carol"
    assert moto_store.get_run(run.info.run_id).data.tags[MLFLOW_USER] == "carol"
    with bind_principal(principal):
        moto_store.set_tag(run.info.run_id, RunTag(MLFLOW_USER, "mallory"))
        moto_store.log_batch(run.info.run_id, [], [], [RunTag(MLFLOW_USER, "mallory")])
    assert moto_store.get_run(run.info.run_id).data.tags[MLFLOW_USER] == "carol"


def test_update_delete_restore(moto_store, run):
    run_id = run.info.run_id
    info = moto_store.update_run_info(run_id, RunStatus.FINISHED, 2000, "renamed")
    assert (info.status, info.end_time, info.run_name) == ("FINISHED", 2000, "renamed")
    assert moto_store.get_run(run_id).data.tags["mlflow.runName"] == "renamed"
    moto_store.delete_run(run_id)
    assert moto_store.get_run(run_id).info.lifecycle_stage == "deleted"
    assert error_code(moto_store.log_param, run_id, Param("p", "1")) == "INVALID_PARAMETER_VALUE"
    assert error_code(moto_store.update_run_info, run_id, None, 1, None) == (
        "INVALID_PARAMETER_VALUE"
    )
    moto_store.restore_run(run_id)
    assert moto_store.get_run(run_id).info.lifecycle_stage == "active"


def test_params_are_immutable(moto_store, run):
    run_id = run.info.run_id
    moto_store.log_param(run_id, Param("lr", "0.1"))
    moto_store.log_param(run_id, Param("lr", "0.1"))
    assert error_code(moto_store.log_param, run_id, Param("lr", "0.2")) == (
        "INVALID_PARAMETER_VALUE"
    )
    assert error_code(moto_store.log_batch, run_id, [], [Param("lr", "0.3")], []) == (
        "INVALID_PARAMETER_VALUE"
    )
    assert moto_store.get_run(run_id).data.params == {"lr": "0.1"}


def test_tags_set_delete_and_run_name_tag(moto_store, run):
    run_id = run.info.run_id
    moto_store.set_tag(run_id, RunTag("k", "v"))
    moto_store.set_tag(run_id, RunTag("mlflow.runName", "via-tag"))
    fetched = moto_store.get_run(run_id)
    assert fetched.data.tags["k"] == "v" and fetched.info.run_name == "via-tag"
    moto_store.delete_tag(run_id, "k")
    assert "k" not in moto_store.get_run(run_id).data.tags
    assert error_code(moto_store.delete_tag, run_id, "k") == "RESOURCE_DOES_NOT_EXIST"
    assert error_code(moto_store.set_tag, run_id, RunTag("bad key!", "v")) == (
        "INVALID_PARAMETER_VALUE"
    )


def test_latest_metric_follows_step_then_timestamp_then_value(moto_store, run):
    run_id = run.info.run_id
    moto_store.log_batch(run_id, [Metric("m", 5.0, 10, 2), Metric("m", 9.0, 99, 1)], [], [])
    assert moto_store.get_run(run_id).data.metrics["m"] == 5.0
    moto_store.log_metric(run_id, Metric("m", 1.0, 11, 2))
    assert moto_store.get_run(run_id).data.metrics["m"] == 1.0
    moto_store.log_metric(run_id, Metric("m", 0.5, 11, 2))  # same step and time, smaller value
    assert moto_store.get_run(run_id).data.metrics["m"] == 1.0


def test_nan_and_infinities_are_kept(moto_store, run):
    run_id = run.info.run_id
    metrics = [Metric("nan", math.nan, 1, 0), Metric("up", math.inf, 1, 0)]
    moto_store.log_batch(run_id, [*metrics, Metric("down", -math.inf, 1, 0)], [], [])
    latest = moto_store.get_run(run_id).data.metrics
    assert math.isnan(latest["nan"]) and latest["up"] == math.inf and latest["down"] == -math.inf
    assert moto_store.get_metric_history(run_id, "up")[0].value == math.inf


def test_invalid_batch_is_refused_whole(moto_store, run):
    run_id = run.info.run_id
    before = moto_store.get_run(run_id)
    good = [Metric("ok", 1.0, 1, 0)] * 3
    for metrics, params, tags in [
        ([*good, Metric("bad", "x", 1, 0)], [Param("p", "1")], []),
        (good, [Param("p", "1"), Param("p", "2")], []),
        (good, [Param("p", "1")], [RunTag("bad key!", "v")]),
        ([Metric("m", 1.0, 1, i) for i in range(1001)], [], []),
        (good, [Param(f"p{i}", "v") for i in range(101)], []),
        ([Metric("m", 1.0, -1, 0)], [], []),
    ]:
        assert error_code(moto_store.log_batch, run_id, metrics, params, tags) == (
            "INVALID_PARAMETER_VALUE"
        )
    after = moto_store.get_run(run_id)
    assert after.data.to_dictionary() == before.data.to_dictionary()
    assert len(moto_store.get_metric_history(run_id, "ok")) == 0


def test_a_run_larger_than_a_dynamodb_item_keeps_everything(moto_store, run):
    run_id = run.info.run_id
    params = [Param(f"p{i}", "v" * 6000) for i in range(100)]  # 600 KB of params
    for start in range(0, 100, 25):
        moto_store.log_batch(run_id, [], params[start : start + 25], [])
    moto_store.set_tag(run_id, RunTag("big", "t" * 8000))
    fetched = moto_store.get_run(run_id)
    assert fetched.data.params == {p.key: p.value for p in params}
    assert fetched.data.tags["big"] == "t" * 8000


def test_log_inputs_keeps_datasets_once_per_experiment(moto_store, run):
    run_id = run.info.run_id
    dataset = Dataset("train", "abc123", "local", "file:///data", '{"s": 1}', '{"rows": 3}')
    context = InputTag("mlflow.data.context", "training")
    moto_store.log_inputs(run_id, [DatasetInput(dataset, [context]), DatasetInput(dataset, [])])
    moto_store.log_inputs(run_id, [DatasetInput(dataset, [])])  # already linked: unchanged
    inputs = moto_store.get_run(run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    assert inputs[0].dataset.profile == '{"rows": 3}' and inputs[0].tags[0].value == "training"
    summaries = moto_store._search_datasets([run.info.experiment_id])
    assert [(s.name, s.digest, s.context) for s in summaries] == [("train", "abc123", "training")]
    huge = Dataset("huge", "d", "local", "file:///x", "s" * 400_000, None)
    assert error_code(moto_store.log_inputs, run_id, [DatasetInput(huge, [])]) == (
        "INVALID_PARAMETER_VALUE"
    )


def test_log_outputs_links_models(moto_store, run):
    moto_store.log_outputs(run.info.run_id, [LoggedModelOutput("m-1", 3)])
    outputs = moto_store.get_run(run.info.run_id).outputs.model_outputs
    assert [(o.model_id, o.step) for o in outputs] == [("m-1", 3)]


def test_metric_history_pages_and_bulk(moto_store, run):
    run_id = run.info.run_id
    moto_store.log_batch(run_id, [Metric("h", float(i), 100 - i, i) for i in range(10)], [], [])
    moto_store.log_batch(run_id, [Metric("h", 3.0, 97, 3)], [], [])  # duplicate: kept once
    history = moto_store.get_metric_history(run_id, "h")
    assert [m.timestamp for m in history] == list(range(91, 101))
    page = moto_store.get_metric_history(run_id, "h", max_results=4)
    rest = moto_store.get_metric_history(run_id, "h", max_results=10, page_token=page.token)
    assert [m.step for m in page] + [m.step for m in rest] == [m.step for m in history]
    assert rest.token is None
    sampled = moto_store.get_metric_history_bulk_interval([run_id], "h", 3, None, None)
    assert [m.step for m in sampled] == [0, 4, 9]
    ranged = moto_store.get_metric_history_bulk_interval([run_id], "h", 100, 2, 4)
    assert [m.step for m in ranged] == [2, 3, 4]
    chosen = moto_store.get_metric_history_bulk_interval_from_steps(run_id, "h", [1, 5], 10)
    assert [(m.step, m.run_id) for m in chosen] == [(1, run_id), (5, run_id)]
    assert moto_store.get_max_step_for_metric(run_id, "h") == 9
    bulk = moto_store.get_metric_history_bulk([run_id], "h", 5)
    assert len(bulk) == 5
    assert moto_store.get_metric_history("unknown-run", "h") == []


def test_a_run_without_start_time_is_refused_before_anything_is_written(moto_store):
    experiment_id = moto_store.create_experiment("no-start")
    with pytest.raises(MlflowException, match="start_time cannot be None"):
        moto_store.create_run(experiment_id, "u", None, [], "r")
    assert moto_store.search_runs([experiment_id], "", ViewType.ALL) == []
