"""The order of a metric point in a bucket (store/tracking/run_keys.py): a short string whose
order is MLflow's "latest" order, (step, timestamp, value)."""

from __future__ import annotations

import math
import struct
import uuid

from hypothesis import given
from hypothesis import strategies as st
from mlflow.entities import Metric
from test_metric_buckets import buckets_of

from store.tracking.items import MetricPoint
from store.tracking.run_keys import bucket_sk, metric_order, metrics_pk, step_and_timestamp

INT64 = 2**63
numbers = st.one_of(
    st.integers(-(10**6), 10**6),
    st.integers(-INT64, INT64 - 1),
    st.integers(-(2**70), 2**70),  # clamped to 64 bits, as SQL's BIGINT would refuse them
    st.sampled_from([0, 1, -1, 63, 64, -64, -65, 4095, 4096, INT64 - 1, -INT64, 1_765_000_000_000]),
)
ranks = st.floats(allow_nan=False)  # MetricPoint.rank is never NaN
points = st.tuples(numbers, numbers, ranks)


def _clamped(number: int) -> int:
    return min(max(number, -INT64), INT64 - 1)


def _latest_order(point: tuple) -> tuple:
    step, timestamp, rank = point
    return (_clamped(step), _clamped(timestamp), rank)  # -0.0 == 0.0, as SQL compares


def _legacy_order(step: int, timestamp: int, rank: float) -> str:
    """The 48 hex digits of orders written by earlier versions."""
    (bits,) = struct.unpack(">Q", struct.pack(">d", 0.0 if rank == 0 else rank))
    ordered = (~bits & (2**64 - 1)) if bits >> 63 else bits | INT64
    return f"{_clamped(step) + INT64:016x}{_clamped(timestamp) + INT64:016x}{ordered:016x}"


def _sign(a, b) -> int:
    return (a > b) - (a < b)


@given(points, points)
def test_orders_compare_as_step_then_timestamp_then_value(a, b):
    assert _sign(metric_order(*a), metric_order(*b)) == _sign(_latest_order(a), _latest_order(b))


@given(points, st.sampled_from([math.inf, -math.inf]))
def test_the_next_value_after_any_value_is_newer(point, direction):
    step, timestamp, rank = point
    after = math.nextafter(rank, direction)
    if after != rank:  # not an infinity stepping outwards
        newer, older = (after, rank) if direction > 0 else (rank, after)
        assert metric_order(step, timestamp, newer) > metric_order(step, timestamp, older)


@given(points)
def test_step_and_timestamp_are_read_back(point):
    step, timestamp, _ = point
    assert step_and_timestamp(metric_order(*point)) == (_clamped(step), _clamped(timestamp))


@given(points, points)
def test_an_order_of_an_earlier_version_is_read_and_is_older_than_every_order_now(a, b):
    legacy = _legacy_order(*a)
    assert step_and_timestamp(legacy) == (_clamped(a[0]), _clamped(a[1]))
    assert legacy < metric_order(*b)


def test_an_order_of_a_training_step_is_short():
    # Half the 48 hex digits of earlier versions: a bucket of ~1 KB holds about twice the keys.
    assert len(metric_order(1_000_000, 1_765_000_000_000, 0.123456789)) <= 25


def test_a_run_logged_before_and_after_an_upgrade_reads_both_and_takes_the_new_point(moto_store):
    experiment_id = moto_store.create_experiment(f"order-{uuid.uuid4().hex}")
    run_id = moto_store.create_run(experiment_id, "u", 1, [], "r").info.run_id
    moto_store.log_metric(run_id, Metric("loss", 0.5, 1_000, 7))
    moto_store.log_metric(run_id, Metric("acc", 0.9, 1_000, 7))
    position = moto_store._location(run_id).position
    (bucket,) = buckets_of(moto_store, run_id)
    legacy = {key: {**entry, "o": _legacy_order(7, 1_000, float(entry["v"]))}
              for key, entry in bucket["m"].items()}  # fmt: skip
    moto_store.table.put({**bucket, "m": legacy, "hi": max(e["o"] for e in legacy.values())})
    moto_store._states.forget(run_id)
    moto_store._states.hints(run_id).clear()

    metrics = {m.key: m for m in moto_store.get_run(run_id).data._metric_objs}
    assert (metrics["acc"].value, metrics["acc"].step, metrics["acc"].timestamp) == (0.9, 7, 1_000)
    # A point logged after the upgrade is the latest, even at an earlier step.
    moto_store.log_metric(run_id, Metric("loss", 0.25, 900, 3))
    metrics = {m.key: m for m in moto_store.get_run(run_id).data._metric_objs}
    assert (metrics["loss"].value, metrics["loss"].step) == (0.25, 3)
    assert (metrics["acc"].value, metrics["acc"].step) == (0.9, 7)
    stored = moto_store.table.get(metrics_pk(experiment_id), bucket_sk(position, 0))
    assert stored["m"]["loss"]["o"] == metric_order(3, 900, MetricPoint("loss", 0.25, 900, 3).rank)
