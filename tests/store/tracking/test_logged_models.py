"""Logged models on the DynamoDB tracking store (moto's in-process DynamoDB)."""

from __future__ import annotations

import json

import pytest
from mlflow.entities import (
    LoggedModelOutput,
    LoggedModelParameter,
    LoggedModelStatus,
    LoggedModelTag,
    Metric,
)
from mlflow.exceptions import MlflowException
from mlflow.models import Model


def test_create_and_get_keep_every_field(store, experiment_id):
    run = store.create_run(experiment_id, "alice", 0, [], "r")
    model = store.create_logged_model(
        experiment_id,
        name="clf",
        source_run_id=run.info.run_id,
        tags=[LoggedModelTag("team", "a")],
        params=[LoggedModelParameter("lr", "0.1")],
        model_type="sklearn",
    )
    got = store.get_logged_model(model.model_id)
    assert got.to_dictionary() == model.to_dictionary()
    assert got.status == LoggedModelStatus.PENDING
    assert got.tags == {"team": "a"} and got.params == {"lr": "0.1"}
    experiment = store.get_experiment(experiment_id)
    assert got.artifact_location == (
        f"{experiment.artifact_location}/models/{model.model_id}/artifacts"
    )


def test_get_is_one_get_item(store, experiment_id):
    model = store.create_logged_model(experiment_id)
    store.table.round_trips.reset()
    store.get_logged_model(model.model_id)
    assert store.table.round_trips.by_operation() == {"GetItem": 1}


def test_unknown_model_is_resource_does_not_exist(store):
    with pytest.raises(MlflowException) as info:
        store.get_logged_model("m-missing")
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as info:
        store.finalize_logged_model("m-missing", LoggedModelStatus.READY)
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_invalid_name_and_deleted_experiment_are_refused(store, experiment_id):
    with pytest.raises(MlflowException, match="Invalid model name"):
        store.create_logged_model(experiment_id, name="a/b")
    store.delete_experiment(experiment_id)
    with pytest.raises(MlflowException, match="active"):
        store.create_logged_model(experiment_id)


def test_finalize_tags_params_and_delete(store, experiment_id):
    model = store.create_logged_model(experiment_id, tags=[LoggedModelTag("a", "1")])
    store.table.round_trips.reset()
    ready = store.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    assert store.table.round_trips.by_operation() == {"UpdateItem": 1}
    assert ready.status == LoggedModelStatus.READY
    store.set_logged_model_tags(
        model.model_id, [LoggedModelTag("b", "2"), LoggedModelTag("a", "3")]
    )
    store.log_logged_model_params(model.model_id, [LoggedModelParameter("k", "v")])
    store.delete_logged_model_tag(model.model_id, "b")
    got = store.get_logged_model(model.model_id)
    assert got.tags == {"a": "3"} and got.params == {"k": "v"}
    with pytest.raises(MlflowException, match="No tag with key"):
        store.delete_logged_model_tag(model.model_id, "b")
    store.delete_logged_model(model.model_id)
    with pytest.raises(MlflowException):
        store.get_logged_model(model.model_id)
    assert store.get_logged_model(model.model_id, allow_deleted=True).model_id == model.model_id
    assert store.search_logged_models([experiment_id]).to_list() == []


def test_metrics_logged_with_a_model_id_land_on_the_model(store, experiment_id):
    run = store.create_run(experiment_id, "alice", 0, [], "r")
    model = store.create_logged_model(experiment_id, source_run_id=run.info.run_id)
    store.log_batch(
        run.info.run_id,
        [
            Metric(
                "acc", 0.9, 10, 0, model_id=model.model_id, dataset_name="d", dataset_digest="1"
            ),
            Metric("loss", float("nan"), 10, 0, model_id=model.model_id),
            Metric("plain", 1.0, 10, 0),
        ],
        [],
        [],
    )
    metrics = {m.key: m for m in store.get_logged_model(model.model_id).metrics}
    assert set(metrics) == {"acc", "loss"}
    assert metrics["acc"].dataset_name == "d" and metrics["acc"].run_id == run.info.run_id
    assert metrics["loss"].value == 0.0  # NaN is kept as 0, as MLflow's SQL store does


def test_run_outputs_and_log_model_history(store, experiment_id):
    run = store.create_run(experiment_id, "alice", 0, [], "r")
    model = store.create_logged_model(experiment_id, source_run_id=run.info.run_id)
    store.log_outputs(run.info.run_id, [LoggedModelOutput(model.model_id, 3)])
    store.record_logged_model(run.info.run_id, Model(artifact_path="m", run_id=run.info.run_id))
    got = store.get_run(run.info.run_id)
    assert [(o.model_id, o.step) for o in got.outputs.model_outputs] == [(model.model_id, 3)]
    history = json.loads(got.data.tags["mlflow.log-model.history"])
    assert history[0]["artifact_path"] == "m"


def test_model_versions_tag_is_kept_on_the_model(store, experiment_id):
    model = store.create_logged_model(experiment_id)
    store.set_model_versions_tags("clf", "1", model.model_id)
    store.set_model_versions_tags("clf", "2", model.model_id)
    tag = store.get_logged_model(model.model_id).tags["mlflow.modelVersions"]
    assert json.loads(tag) == [{"name": "clf", "version": "1"}, {"name": "clf", "version": "2"}]


def test_search_pages_are_signed_and_complete(store, experiment_id):
    ids = {store.create_logged_model(experiment_id).model_id for _ in range(7)}
    seen, token, pages = [], None, 0
    while True:
        page = store.search_logged_models([experiment_id], max_results=3, page_token=token)
        seen += [m.model_id for m in page]
        pages += 1
        token = page.token
        if not token:
            break
    assert set(seen) == ids and len(seen) == 7 and pages == 3
    with pytest.raises(MlflowException) as info:
        store.search_logged_models([experiment_id], page_token=token_of_other_search(store))
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


def token_of_other_search(store) -> str:
    other = store.create_experiment("other")
    for _ in range(2):
        store.create_logged_model(other)
    return store.search_logged_models([other], max_results=1).token


def test_search_is_one_query_per_experiment(store, experiment_id):
    second = store.create_experiment("second")
    for exp in (experiment_id, second):
        for _ in range(5):
            store.create_logged_model(exp, params=[LoggedModelParameter("p", "x")])
    store.table.round_trips.reset()
    found = store.search_logged_models([experiment_id, second], filter_string="params.p = 'x'")
    assert len(found) == 10
    assert store.table.round_trips.by_operation() == {"Query": 2}


def test_search_refuses_bad_filters_and_orders(store, experiment_id):
    with pytest.raises(MlflowException):
        store.search_logged_models([experiment_id], filter_string="metrics.a >")
    with pytest.raises(MlflowException):
        store.search_logged_models([experiment_id], order_by=[{"field_name": "params.x"}])
    with pytest.raises(MlflowException, match="dataset_name"):
        store.search_logged_models([experiment_id], datasets=[{"dataset_digest": "x"}])


def test_search_takes_the_handler_shapes(store, experiment_id):
    run = store.create_run(experiment_id, "alice", 0, [], "r")
    model = store.create_logged_model(experiment_id)
    store.log_batch(
        run.info.run_id,
        [Metric("acc", 0.9, 1, 0, model_id=model.model_id, dataset_name="d", dataset_digest="1")],
        [],
        [],
    )
    found = store.search_logged_models(
        [experiment_id],
        filter_string="metrics.acc > 0.5",
        datasets=[{"dataset_name": "d", "dataset_digest": "1"}],
        order_by=[{"field_name": "creation_time", "ascending": False}],
    )
    assert [m.model_id for m in found] == [model.model_id]
    with pytest.raises(MlflowException) as info:
        store.search_logged_models([experiment_id], order_by=["name"])
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
