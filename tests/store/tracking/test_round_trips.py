"""DynamoDB requests per MLflow call, counted (the table in store/README.md)."""

from __future__ import annotations

import pytest
from mlflow.entities import Dataset, DatasetInput, ExperimentTag, Metric, Param, RunTag, ViewType


def requests_of(store, call, *args, **kwargs) -> dict[str, int]:
    store.table.round_trips.reset()
    call(*args, **kwargs)
    return store.table.round_trips.by_operation()


@pytest.fixture
def populated(moto_store):
    experiment_id = moto_store.create_experiment("counted")
    run_id = moto_store.create_run(experiment_id, "u", 1, [], "r").info.run_id
    return moto_store, experiment_id, run_id


def test_experiment_calls(populated):
    store, experiment_id, _ = populated
    assert requests_of(store, store.create_experiment, "another") == {
        "UpdateItem": 1,
        "PutItem": 2,
    }
    assert requests_of(store, store.get_experiment, experiment_id) == {"GetItem": 1}
    assert requests_of(store, store.get_experiment_by_name, "counted") == {"GetItem": 2}
    assert requests_of(store, store.search_experiments) == {"Query": 1}
    tag = ExperimentTag("k", "v")
    assert requests_of(store, store.set_experiment_tag, experiment_id, tag) == {"UpdateItem": 1}
    assert requests_of(store, store.rename_experiment, experiment_id, "renamed") == {
        "GetItem": 1,
        "PutItem": 1,
        "UpdateItem": 1,
        "DeleteItem": 1,
    }


def test_delete_experiment_writes_each_run_once(populated):
    store, experiment_id, _ = populated
    for _ in range(4):
        store.create_run(experiment_id, "u", 1, [], "more")
    assert requests_of(store, store.delete_experiment, experiment_id) == {
        "GetItem": 1,
        "Query": 1,
        "UpdateItem": 5 + 1,
    }


def test_run_calls(populated):
    store, experiment_id, run_id = populated
    # The experiment was read active by the run before (store/tracking/run_states.py).
    assert requests_of(store, store.create_run, experiment_id, "u", 1, [], "x") == {
        "BatchWriteItem": 1,  # locator, first metric bucket, tags
        "PutItem": 1,  # the core, last
    }
    store._active_experiments.forget(experiment_id)
    assert requests_of(store, store.create_run, experiment_id, "u", 1, [], "x") == {
        "GetItem": 1,  # the experiment: active? where do its artifacts go?
        "BatchWriteItem": 1,
        "PutItem": 1,
    }
    assert requests_of(store, store.get_run, run_id) == {"Query": 2}  # content ∥ metric buckets
    store._locators.forget(run_id)
    assert requests_of(store, store.get_run, run_id) == {"GetItem": 1, "Query": 2}
    # The first write reads the core (active? bucket layout?), then writes its item ...
    first = {"GetItem": 1, "PutItem": 1}
    assert requests_of(store, store.log_param, run_id, Param("p", "1")) == first
    # ... and for a moment after, writes are the items alone (store/tracking/run_states.py).
    assert requests_of(store, store.set_tag, run_id, RunTag("t", "1")) == {"PutItem": 1}
    assert requests_of(store, store.update_run_info, run_id, None, 5, None) == {
        "UpdateItem": 1,
        "GetItem": 1,  # the run-name tag, in parallel
    }
    assert requests_of(store, store.log_metric, run_id, Metric("m", 1.0, 1, 1)) == {
        "UpdateItem": 1,  # the metric's bucket
        "BatchWriteItem": 1,  # the history point
    }
    assert requests_of(store, store.get_metric_history, run_id, "m") == {"Query": 1}
    assert requests_of(store, store.delete_run, run_id) == {"UpdateItem": 1}
    assert requests_of(store, store.restore_run, run_id) == {"UpdateItem": 1}
    assert requests_of(store, store.log_metric, run_id, Metric("m", 2.0, 2, 2)) == {
        "GetItem": 1,  # a deleted or restored run is read again
        "UpdateItem": 1,
        "BatchWriteItem": 1,
    }


def test_log_batch_of_1000_metrics_is_40_batch_writes_and_no_run_write(populated):
    store, _, run_id = populated
    metrics = [Metric(f"m{i % 8}", float(i), i, i) for i in range(997)]
    params, tags = [Param("p", "1")], [RunTag("t", "1"), RunTag("u", "2")]
    assert requests_of(store, store.log_batch, run_id, metrics, params, tags) == {
        "GetItem": 1,  # the core
        "BatchGetItem": 1,  # the batch's params, to refuse a changed one before writing
        "PutItem": 1,  # the new param
        "UpdateItem": 1,  # the 8 keys' latest values, one bucket
        "BatchWriteItem": 40 + 1,  # 997 history points, 2 tags
    }


def test_get_run_with_datasets_adds_one_batch_get(populated):
    store, _, run_id = populated
    dataset = Dataset("d", "1", "local", "file:///d", None, None)
    store.log_inputs(run_id, [DatasetInput(dataset, [])])
    assert requests_of(store, store.get_run, run_id) == {"Query": 2, "BatchGetItem": 1}
    two = [DatasetInput(Dataset(n, "1", "local", "file:///d", None, None), []) for n in "ab"]
    assert requests_of(store, store.log_inputs, run_id, two) == {
        "GetItem": 1,  # the core
        "BatchGetItem": 1,  # which of them the run already references
        "UpdateItem": 2,  # the datasets
        "BatchWriteItem": 1,  # the references
    }


@pytest.mark.parametrize("runs", [5, 120])
def test_search_runs_does_not_read_per_run(moto_store, runs):
    experiment_id = moto_store.create_experiment("many")
    other = moto_store.create_experiment("other")
    for i in range(runs):
        run = moto_store.create_run(experiment_id if i % 2 else other, "u", i, [], f"r{i}")
        moto_store.log_batch(run.info.run_id, [Metric("m", float(i), 1, 0)], [], [])
    counts = requests_of(
        moto_store,
        moto_store.search_runs,
        [experiment_id, other],
        "metrics.m > 2",
        ViewType.ACTIVE_ONLY,
        max_results=10,
        order_by=["metrics.m DESC"],
    )
    # Per experiment: its status column and its metric buckets; then the page's runs: one by
    # one for a few (5 runs: 1 per experiment), read in order where dense (120 runs: 5 each).
    assert counts == {"Query": 8}


_BLOB = RunTag("blob", "x" * 3000)  # ~3 KB runs: 1500 of them fill five 1 MB pages


def test_search_in_start_time_order_stops_early(moto_store):
    big, small = moto_store.create_experiment("big"), moto_store.create_experiment("small")
    for experiment_id, runs in ((big, 1500), (small, 300)):
        for i in range(runs):
            moto_store.create_run(experiment_id, "u", i, [_BLOB], f"r{i}")

    def search(experiments, filter_string="", order_by=None, max_results=100, token=None):
        args = (experiments, filter_string, ViewType.ACTIVE_ONLY, max_results, order_by, token)
        return requests_of(moto_store, moto_store.search_runs, *args)

    one_page = {"Query": 2}  # the runs (content) and their metric buckets, in order
    for order_by in (None, ["attributes.start_time DESC"], ["start_time ASC"], ["created"]):
        for experiment_id in (big, small):  # the same cost whatever the experiment's size
            assert search([experiment_id], order_by=order_by) == one_page, order_by
        token = moto_store.search_runs([big], "", ViewType.ACTIVE_ONLY, 100, order_by).token
        assert search([big], order_by=order_by, token=token) == one_page, order_by
    # An indexed filter: the index entries, then the (dense) runs in order.
    assert search([big], "attributes.status = 'RUNNING'") == {"Query": 3}
    assert search([big], "attributes.run_name LIKE 'zz%'") == {"Query": 1}
    # Several experiments: one page of each, merged.
    assert search([big, small]) == {"Query": 4}
    # A start-time comparison reads only the runs it can match.
    assert search([big], "attributes.start_time = 0", max_results=10) == {"Query": 2}
    # Orders on something else gather the status column (the 5 MB of runs are not read), then
    # read the page's runs: here the 100 newest, in order.
    assert search([big], order_by=["attributes.end_time"]) == {"Query": 1 + 2}


_TRACE_BLOB = {"blob": "x" * 3100}  # ~3.5 KB traces: 1200 of them fill five 1 MB index pages


def test_search_traces_newest_first_stops_early(moto_store):
    from test_traces_support import trace_info

    big, small = moto_store.create_experiment("big"), moto_store.create_experiment("small")
    for experiment_id, traces in ((big, 1200), (small, 150)):
        for i in range(traces):  # two traces per millisecond
            info = trace_info(f"tr-{experiment_id}-{i:05d}", experiment_id, tags=_TRACE_BLOB)
            info.request_time += i // 2
            moto_store.start_trace(info)

    def search(experiments, filter_string=None, order_by=None, max_results=100, token=None):
        args = {"filter_string": filter_string, "order_by": order_by, "page_token": token}
        return requests_of(
            moto_store,
            moto_store.search_traces,
            locations=experiments,
            max_results=max_results,
            **args,
        )

    for order_by in (None, ["timestamp_ms DESC"], ["timestamp_ms DESC", "name"]):
        for experiment_id in (big, small):  # the same cost whatever the experiment's size
            assert search([experiment_id], order_by=order_by) == {"Query": 1}, order_by
        _, token = moto_store.search_traces(locations=[big], order_by=order_by)
        assert search([big], order_by=order_by, token=token) == {"Query": 1}, order_by
    assert search([big], "status = 'OK'") == {"Query": 1}
    # A page ending inside a tie reads on past the tie (into a second, larger page).
    assert search([big], max_results=99) == {"Query": 2}
    # Several experiments: one page of each, merged.
    assert search([big, small]) == {"Query": 2}
    # Orders the index cannot serve read every page (as every search did before).
    assert search([big], order_by=["timestamp_ms ASC"]) == {"Query": 5}
    # A filter nothing matches reads on in pages of 11, 22, 44, ... traces, up to 1 MB each.
    assert search([big], "tags.blob = 'y'", max_results=10) == {"Query": 8}
