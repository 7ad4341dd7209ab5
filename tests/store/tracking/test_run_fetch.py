"""Runs a search fetches one by one (store/tracking/run_reader.py, `fetch`): a Query of each
run's content, then the metric buckets of all of them by key; a run whose buckets are splitting
is read whole all the same."""

from __future__ import annotations

from mlflow.entities import Metric, RunStatus, ViewType

from store.dynamo.capacity import CapacityMeter
from store.tracking.metric_buckets import Layout, RunBuckets
from store.tracking.run_keys import bucket_sk, metrics_pk


def _metrics(store, run_id: str) -> dict[str, float]:
    return store.get_run(run_id).data.metrics


def test_scattered_matches_cost_one_query_each_and_one_request_for_their_buckets(dynalite_store):
    store = dynalite_store
    experiment_id = store.create_experiment("scattered")
    killed = []
    for i in range(200):
        run_id = store.create_run(experiment_id, "u", 1000 + i, [], f"run-{i}").info.run_id
        store.log_batch(run_id, [Metric("acc", i / 1000, 1, 0), Metric("loss", -i, 1, 0)], [], [])
        if i % 10 == 3:
            store.update_run_info(run_id, RunStatus.KILLED, 5000, None)
            killed.append(run_id)
    meter = CapacityMeter()
    with meter.installed():
        found = []
        usage = meter.measure(
            lambda: found.extend(
                store.search_runs([experiment_id], "attributes.status = 'KILLED'", ViewType.ALL)
            )
        )
    assert [r.info.run_id for r in found] == killed[::-1]
    assert {r.info.run_id: r.data.metrics for r in found} == {
        run_id: _metrics(store, run_id) for run_id in killed
    }
    # 20 runs: the index, a few in order, then one Query each; their buckets in one request.
    assert usage.requests.get("BatchGetItem", 0) == 1, usage
    assert usage.request_count <= len(killed) + 4, usage


def test_a_run_whose_buckets_are_splitting_is_fetched_whole(dynalite_store):
    store = dynalite_store
    experiment_id = store.create_experiment("splitting")
    runs = [store.create_run(experiment_id, "u", 1000 + i, [], f"r{i}").info.run_id for i in (0, 1)]
    metrics = [Metric(f"key-{k:03d}", k, 1, 0) for k in range(12)]
    for run_id in runs:
        store.log_batch(run_id, metrics, [], [])
    location = store._location(runs[0])
    buckets = RunBuckets(store.table, experiment_id, location.position, runs[0])
    layout = buckets.layout()
    assert layout == Layout(0, 0)
    # Freeze, move the entries out, keep the rest: every step of a split but the core's layout.
    assert buckets.ensure_split(0, 0, 2) == 2
    assert buckets.layout() == layout

    found = store.search_runs([experiment_id], "attributes.status = 'RUNNING'", ViewType.ALL)
    expected = {m.key: float(m.value) for m in metrics}
    assert {r.info.run_id: r.data.metrics for r in found} == {run: expected for run in runs}


def test_a_run_whose_bucket_the_by_key_read_lacks_is_read_again_by_a_query(dynalite_store):
    # An eventually consistent BatchGetItem can meet a copy that lacks a bucket the core's
    # layout names: the run's buckets are then read by a Query, like a run that is splitting.
    store = dynalite_store
    experiment_id = store.create_experiment("lacking")
    runs = [store.create_run(experiment_id, "u", 1000 + i, [], f"r{i}").info.run_id for i in (0, 1)]
    for run_id in runs:
        store.log_batch(run_id, [Metric(f"key-{k:03d}", k, 1, 0) for k in range(40)], [], [])
    location = store._location(runs[0])
    layout = RunBuckets(store.table, experiment_id, location.position, runs[0]).layout()
    assert 1 < layout.count <= 4
    dropped = store.table.get(metrics_pk(experiment_id), bucket_sk(location.position, 1))
    store.table.delete(dropped["pk"], dropped["sk"])

    meter = CapacityMeter()
    with meter.installed():
        usage = meter.measure(
            lambda: store.search_runs(
                [experiment_id], "attributes.status = 'RUNNING'", ViewType.ALL
            )
        )
    # The index, each run's content, both runs' buckets by key, then the lacking run's again.
    assert usage.requests == {"Query": 4, "BatchGetItem": 1}, usage
