"""A metric bucket's `hi` (store/tracking/metric_buckets.py): a write of points all newer than
it needs no condition per key; every other write still keeps each key's newest point."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.entities import Metric
from test_metric_buckets import buckets_of
from test_round_trips import requests_of

from store.dynamo.expressions import Update
from store.tracking import DynamoTrackingStore
from store.tracking.metric_buckets import NO_ORDER


def _run(store) -> str:
    experiment_id = store.create_experiment(f"high-water-{uuid.uuid4().hex}")
    return store.create_run(experiment_id, "u", 1, [], "r").info.run_id


def assert_hi_bounds_every_entry(store, run_id: str) -> None:
    for bucket in buckets_of(store, run_id):
        assert bucket["hi"] >= max((e["o"] for e in bucket["m"].values()), default=NO_ORDER)


def _keyed(store, run_id: str, metric: Metric) -> dict:
    """The request counts of one log_metric, and whether its condition named the key."""
    named = []
    original = store.table.update

    def update(pk, sk, change):
        named.extend(change.names.values())
        return original(pk, sk, change)

    store.table.update = update
    try:
        counts = requests_of(store, store.log_metric, run_id, metric)
    finally:
        del store.table.update
    return {"requests": counts, "per key": "o" in named}  # each key's order `o` compared


def test_a_training_loop_writes_each_point_on_hi_alone(moto_store):
    run_id = _run(moto_store)
    moto_store.log_metric(run_id, Metric("loss", 1.0, 1, 0))
    for step in range(1, 4):
        answer = _keyed(moto_store, run_id, Metric("loss", 1.0 / step, step, step))
        assert answer == {
            "requests": {"UpdateItem": 1, "BatchWriteItem": 1},
            "per key": False,
        }
    assert moto_store.get_run(run_id).data.metrics == {"loss": 1.0 / 3}
    assert_hi_bounds_every_entry(moto_store, run_id)


def test_keys_on_two_scales_of_steps_share_a_bucket_in_one_write_each(moto_store):
    run_id = _run(moto_store)
    moto_store.log_metric(run_id, Metric("loss", 0.5, 1, 5000))  # a global step
    moto_store.log_metric(run_id, Metric("val", 0.1, 1, 1))  # an epoch: below hi
    for epoch in range(2, 4):
        answer = _keyed(moto_store, run_id, Metric("val", 0.1 * epoch, epoch, epoch))
        assert answer == {"requests": {"UpdateItem": 1, "BatchWriteItem": 1}, "per key": True}
    assert moto_store.get_run(run_id).data.metrics == {"loss": 0.5, "val": 0.1 * 3}
    assert_hi_bounds_every_entry(moto_store, run_id)


def test_an_older_point_leaves_the_newest_in_place(moto_store):
    run_id = _run(moto_store)
    moto_store.log_metric(run_id, Metric("m", 5.0, 5, 5))
    moto_store.log_metric(run_id, Metric("m", 3.0, 3, 3))
    assert moto_store.get_run(run_id).data.metrics == {"m": 5.0}
    assert [m.step for m in moto_store.get_metric_history(run_id, "m")] == [3, 5]


def test_a_bucket_written_before_hi_is_written_key_by_key(moto_store):
    run_id = _run(moto_store)
    moto_store.log_metric(run_id, Metric("m", 1.0, 1, 1))
    for bucket in buckets_of(moto_store, run_id):
        moto_store.table.update(bucket["pk"], bucket["sk"], Update().remove("hi"))
    fresh = DynamoTrackingStore(moto_store.store_uri, moto_store.artifact_root_uri)
    fresh.table.parallel_writes = 1
    fresh.log_metric(run_id, Metric("m", 2.0, 2, 2))  # finds no hi: reads, writes by key
    answer = _keyed(fresh, run_id, Metric("m", 3.0, 3, 3))
    assert answer == {"requests": {"UpdateItem": 1, "BatchWriteItem": 1}, "per key": True}
    fresh.log_metric(run_id, Metric("m", 0.5, 0, 0))
    assert fresh.get_run(run_id).data.metrics == {"m": 3.0}
    assert all("hi" not in b for b in buckets_of(fresh, run_id))


_POINT = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, 6),  # step
    st.integers(0, 2),  # timestamp
)
_WRITE = st.tuples(st.sampled_from([0, 1]), st.lists(_POINT, min_size=1, max_size=3))


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(writes=st.lists(_WRITE, min_size=1, max_size=10))
def test_any_order_of_writes_from_two_processes_keeps_each_newest_point(moto_store, writes):
    stores = [moto_store, DynamoTrackingStore(moto_store.store_uri, moto_store.artifact_root_uri)]
    stores[1].table.parallel_writes = 1
    run_id = _run(moto_store)
    newest = {}
    for n, (who, points) in enumerate(writes):
        metrics = []
        for i, (key, step, timestamp) in enumerate(points):
            value = n + i / 10
            metrics.append(Metric(key, value, timestamp, step))
            newest[key] = max(newest.get(key, (step, timestamp, value)), (step, timestamp, value))
        stores[who].log_batch(run_id, metrics, [], [])  # one process of two, in turn
    assert stores[1].get_run(run_id).data.metrics == {k: o[2] for k, o in newest.items()}
    assert_hi_bounds_every_entry(moto_store, run_id)
