"""Writes skip the read of the run's core for a moment after one (store/tracking/run_states.py):
a deleted run is still refused, and a layout grown elsewhere still routes every metric."""

from __future__ import annotations

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from store.tracking import DynamoTrackingStore
from store.tracking.metric_buckets import Layout
from store.tracking.run_states import Recent, RunStates


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_state_lasts_its_ttl_and_the_cache_keeps_its_size():
    clock = Clock()
    states = RunStates(ttl=2.0, size=2, clock=clock)
    states.remember("a", Layout(0, 0))
    clock.now += 1.9
    assert states.layout("a") == Layout(0, 0)
    clock.now += 0.1
    assert states.layout("a") is None
    for run_id in "abc":
        states.remember(run_id, Layout(1, 0))
    assert [states.layout(r) for r in "abc"] == [None, Layout(1, 0), Layout(1, 0)]
    states.forget("b")
    assert states.layout("b") is None


def test_a_grown_layout_replaces_an_older_one_only():
    states = RunStates(clock=Clock())
    states.remember("a", Layout(1, 1))
    states.moved_to("a", Layout(1, 0))
    assert states.layout("a") == Layout(1, 1)
    states.moved_to("a", Layout(2, 0))
    assert states.layout("a") == Layout(2, 0)
    states.moved_to("unknown", Layout(3, 0))
    assert states.layout("unknown") is None


def _refused(call, *args) -> MlflowException:
    with pytest.raises(MlflowException) as raised:
        call(*args)
    return raised.value


def test_a_run_deleted_through_this_store_is_refused_at_once(moto_store):
    exp = moto_store.create_experiment("states")
    run_id = moto_store.create_run(exp, "u", 1, [], "r").info.run_id
    moto_store.log_metric(run_id, Metric("m", 1.0, 1, 0))  # remembered active
    moto_store.delete_run(run_id)
    for call, value in (
        (moto_store.log_metric, Metric("m", 2.0, 2, 1)),
        (moto_store.log_param, Param("p", "1")),
        (moto_store.set_tag, RunTag("t", "1")),
    ):
        assert "must be in the 'active' state" in _refused(call, run_id, value).message
    moto_store.restore_run(run_id)
    moto_store.log_metric(run_id, Metric("m", 2.0, 2, 1))
    assert moto_store.get_run(run_id).data.metrics == {"m": 2.0}


def test_the_runs_of_an_experiment_deleted_through_this_store_are_refused_at_once(moto_store):
    exp = moto_store.create_experiment("states")
    run_ids = [moto_store.create_run(exp, "u", i, [], f"r{i}").info.run_id for i in range(3)]
    for run_id in run_ids:
        moto_store.set_tag(run_id, RunTag("t", "1"))
    moto_store.delete_experiment(exp)
    for run_id in run_ids:
        error = _refused(moto_store.set_tag, run_id, RunTag("t", "2"))
        assert "must be in the 'active' state" in error.message


def test_an_experiment_deleted_through_this_store_takes_no_new_run(moto_store):
    exp = moto_store.create_experiment("states")
    moto_store.create_run(exp, "u", 1, [], "r")  # remembered active
    moto_store.delete_experiment(exp)
    assert (
        "must be in the 'active' state"
        in _refused(moto_store.create_run, exp, "u", 2, [], "s").message
    )
    moto_store.restore_experiment(exp)
    assert moto_store.create_run(exp, "u", 3, [], "t").info.experiment_id == exp


@pytest.fixture
def two_processes(moto_store):
    """Two stores on one table, as two handler-tier processes are."""
    other = DynamoTrackingStore(moto_store.store_uri, moto_store.artifact_root_uri)
    other.table.parallel_writes = 1
    clock = Clock()
    moto_store._states = RunStates(clock=clock)
    moto_store._active_experiments = Recent(moto_store._states.ttl, 10, clock)
    return moto_store, other, clock


def test_a_run_deleted_elsewhere_takes_writes_for_the_ttl_at_most(two_processes):
    here, elsewhere, clock = two_processes
    exp = here.create_experiment("states")
    run_id = here.create_run(exp, "u", 1, [], "r").info.run_id
    here.log_param(run_id, Param("before", "1"))
    elsewhere.delete_run(run_id)
    clock.now += here._states.ttl - 0.5
    here.log_param(run_id, Param("late", "1"))  # as if it came just before the deletion
    clock.now += 0.5
    assert (
        "must be in the 'active' state"
        in _refused(here.log_param, run_id, Param("later", "1")).message
    )
    elsewhere.restore_run(run_id)
    assert set(elsewhere.get_run(run_id).data.params) == {"before", "late"}


def test_an_experiment_deleted_elsewhere_takes_new_runs_for_the_ttl_at_most(two_processes):
    here, elsewhere, clock = two_processes
    exp = here.create_experiment("states")
    here.create_run(exp, "u", 1, [], "before")
    elsewhere.delete_experiment(exp)
    clock.now += here._states.ttl - 0.5
    late = here.create_run(exp, "u", 2, [], "late").info.run_id  # as if just before
    clock.now += 0.5
    assert (
        "must be in the 'active' state"
        in _refused(here.create_run, exp, "u", 3, [], "later").message
    )
    elsewhere.restore_experiment(exp)
    assert elsewhere.get_run(late).info.run_name == "late"


def test_a_layout_grown_elsewhere_still_routes_every_metric(two_processes):
    here, elsewhere, _ = two_processes
    exp = here.create_experiment("states")
    run_id = here.create_run(exp, "u", 1, [], "r").info.run_id
    here.log_metric(run_id, Metric("first", 1.0, 1, 0))
    assert here._states.layout(run_id) == Layout(0, 0)
    wide = [Metric(f"k{i:03}", float(i), 1, 0) for i in range(200)]  # splits the buckets
    elsewhere.log_batch(run_id, wide, [], [])
    late = [Metric(f"k{i:03}", i + 0.5, 2, 1) for i in range(0, 200, 7)]
    here.log_batch(run_id, [*late, Metric("new", 3.0, 1, 0)], [], [])  # routed by Layout(0, 0)
    assert here._states.layout(run_id) != Layout(0, 0)  # it learned the grown layout
    metrics = elsewhere.get_run(run_id).data.metrics
    assert len(metrics) == 202 and metrics["new"] == 3.0 and metrics["first"] == 1.0
    assert all(metrics[f"k{i:03}"] == i + (0.5 if i % 7 == 0 else 0) for i in range(200))
    history = elsewhere.get_metric_history(run_id, "k007")
    assert [(m.step, m.value) for m in history] == [(0, 7.0), (1, 7.5)]
