"""DynamoDB capacity units per tracking call, counted on dynalite with the store's meter
(store/dynamo/capacity.py): a write costs the same on a small run and on a run as large as
MLflow accepts, no write reads the run, and such a run is stored and read back whole."""

from __future__ import annotations

import math

import pytest
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
from store_support import ARTIFACT_ROOT

from store.dynamo.capacity import CapacityMeter, Usage
from store.tracking import DynamoTrackingStore

BIG_PARAMS = 2000  # of MLflow's longest value
BIG_TAGS = 20
BIG_METRIC_KEYS = 5000
PARAM_CHARS = 6000
TAG_CHARS = 8000
_CALLS_ON_BOTH_RUNS = 3


@pytest.fixture(scope="module")
def world(dynalite_endpoint: str):
    """One store on dynalite: an experiment with a small run and a run MLflow accepts but no
    DynamoDB item could hold (12 MB of params, 160 KB of tags, 5000 metric keys)."""
    host_port = dynalite_endpoint.removeprefix("http://")
    store = DynamoTrackingStore(f"dynamodb://{host_port}/capacity", ARTIFACT_ROOT)
    experiment_id = store.create_experiment("capacity")
    small = store.create_run(experiment_id, "u", 1, [], "small").info.run_id
    store.log_batch(
        small,
        [Metric(f"m{i:05d}", 1.0, 1, 0) for i in range(10)],
        [Param(f"p{i}", "v") for i in range(10)],
        [RunTag(f"t{i}", "v") for i in range(10)] + [RunTag("team", "a")],
    )
    big = store.create_run(experiment_id, "u", 2, [], "big").info.run_id
    for start in range(0, BIG_PARAMS, 100):
        params = [
            Param(f"p{i:04d}", f"{i:04d}" + "v" * (PARAM_CHARS - 4))
            for i in range(start, start + 100)
        ]
        store.log_batch(big, [], params, [])
    tags = [RunTag(f"t{i}", f"{i:02d}" + "t" * (TAG_CHARS - 2)) for i in range(BIG_TAGS)]
    store.log_batch(big, [], [], [*tags, RunTag("team", "a")])
    for start in range(0, BIG_METRIC_KEYS, 1000):
        metrics = [Metric(f"m{i:05d}", float(i), 1, 0) for i in range(start, start + 1000)]
        store.log_batch(big, metrics, [], [])
    meter = CapacityMeter()
    with meter.installed():
        yield store, experiment_id, {"small": small, "big": big}, meter


def measured(world, call, *args) -> Usage:
    store, _, _, meter = world
    return meter.measure(lambda: call(*args))


def on_both(world, make_call) -> dict[str, Usage]:
    """What `make_call(store, run_id, i)` costs on the small and on the big run (the largest
    of a few calls, so that no cheap repetition hides an expensive first one)."""
    store, _, runs, _ = world
    costs = {}
    for size, run_id in runs.items():
        usages = [measured(world, make_call(store, run_id, i)) for i in range(_CALLS_ON_BOTH_RUNS)]
        costs[size] = max(usages, key=lambda u: (u.total_write_units, u.read_units))
    return costs


def no_run_read(usage: Usage, reads: float = 1) -> None:
    """The run is not read by a write: no Query, no Scan, at most `reads` read units, each
    from one item of at most 4 KB (the core, a bucket, a param)."""
    assert "Query" not in usage.requests and "Scan" not in usage.requests, usage
    assert usage.read_units <= reads, usage
    items = usage.requests.get("GetItem", 0) + usage.requests.get("BatchGetItem", 0) * 100
    assert usage.read_units <= items, usage


def test_log_metric_costs_two_write_units_on_a_run_of_any_size(world):
    costs = on_both(
        world, lambda s, r, i: lambda: s.log_metric(r, Metric("m00007", float(i), 10 + i, 1))
    )
    for usage in costs.values():
        assert usage.total_write_units <= 2, usage  # the metric's bucket + its history point
        no_run_read(usage)
    assert costs["big"].total_write_units == costs["small"].total_write_units


def test_new_metric_keys_cost_two_write_units_plus_a_share_of_the_splits(world):
    store, _, runs, meter = world
    usages = [
        meter.measure(lambda i=i: store.log_metric(runs["big"], Metric(f"new{i}", 1.0, 1, 0)))
        for i in range(60)
    ]
    for usage in usages:
        no_run_read(usage, reads=2)  # a split re-reads the core
    # Two units each, and now and then a split (about 4 units) shared by the new keys.
    assert sum(u.total_write_units <= 2 for u in usages) >= 40, usages
    assert sum(u.total_write_units for u in usages) <= 60 * 3, usages


def test_log_param_and_set_tag_cost_two_write_units_on_a_run_of_any_size(world):
    params = on_both(world, lambda s, r, i: lambda: s.log_param(r, Param(f"new-{i}", "0.01")))
    tags = on_both(world, lambda s, r, i: lambda: s.set_tag(r, RunTag(f"new-{i}", "x")))
    for usage in [*params.values(), *tags.values()]:
        assert usage.total_write_units <= 2, usage  # the item + its filter-index entry
        no_run_read(usage)
    assert params["big"].total_write_units == params["small"].total_write_units
    assert tags["big"].total_write_units == tags["small"].total_write_units


def test_a_changed_tag_moves_its_index_entry_and_nothing_else(world):
    changed = on_both(world, lambda s, r, i: lambda: s.set_tag(r, RunTag("team", f"team {i}")))
    store, _, runs, _ = world
    for run_id in runs.values():
        store.set_tag(run_id, RunTag("team", "same team"))
    same = on_both(world, lambda s, r, i: lambda: s.set_tag(r, RunTag("team", "same team")))
    for usage in changed.values():
        assert usage.total_write_units <= 3, usage  # item 1 + index entry deleted and put 2
        no_run_read(usage)
    for usage in same.values():
        assert usage.total_write_units <= 1, usage  # the item; its index entry stays
    assert changed["big"].total_write_units == changed["small"].total_write_units


def test_update_run_info_costs_the_same_on_a_run_of_any_size(world):
    statuses = [RunStatus.FINISHED, RunStatus.RUNNING]
    costs = on_both(
        world,
        lambda s, r, i: lambda: s.update_run_info(r, statuses[i % 2], 5 + i, None),
    )
    for usage in costs.values():
        assert usage.total_write_units <= 3, usage  # the core + its status entry moved
        no_run_read(usage)
    assert costs["big"].total_write_units == costs["small"].total_write_units


@pytest.mark.parametrize(
    "step, points, keys", [(1, 10, 10), (2, 100, 10), (3, 1000, 10), (4, 100, 100)]
)
def test_log_batch_of_n_points_costs_n_plus_a_few_units_per_key(world, step, points, keys):
    store, _, runs, meter = world
    for size, run_id in runs.items():
        names = [f"m{i * 7:05d}" for i in range(keys)]  # existing keys of the big run
        # each batch a step after the one before, as in training
        batch = [Metric(names[i % keys], float(i), 100 + i, step) for i in range(points)]
        usage = meter.measure(lambda r=run_id, b=batch: store.log_batch(r, b, [], []))
        # one unit a point, and per key's bucket one (two for the few buckets past 1 KB; a
        # split now and then, while linear hashing reaches them)
        assert usage.total_write_units <= points + 2 * keys, (size, usage)
        no_run_read(usage, reads=5)  # the core, and again after each step of growth


def test_log_batch_with_params_reads_only_those_params(world):
    store, _, runs, meter = world
    params = [Param(f"batch-{i}", "1") for i in range(10)]
    usage = meter.measure(lambda: store.log_batch(runs["big"], [], params, []))
    assert usage.total_write_units <= 2 * len(params), usage
    no_run_read(usage, reads=1 + len(params))  # the core and the batch's params, strongly


def test_get_run_of_an_ordinary_run_is_one_round_trip(world):
    store, experiment_id, _, meter = world
    run_id = store.create_run(experiment_id, "u", 3, [], "ordinary").info.run_id
    store.log_batch(
        run_id,
        [Metric(f"m{i}", 1.0, 1, 0) for i in range(10)],
        [Param(f"p{i}", "v" * 20) for i in range(10)],
        [RunTag(f"t{i}", "v" * 20) for i in range(10)],
    )
    usage = meter.measure(lambda: store.get_run(run_id))
    assert usage.requests == {"Query": 2}  # the run's items ∥ its metric buckets
    assert usage.read_units <= usage.bytes_returned / 4096 + 2


def test_a_run_of_any_size_mlflow_accepts_is_stored_and_read_back_whole(world):
    store, experiment_id, runs, meter = world
    usage = meter.measure(lambda: store.get_run(runs["big"]))
    run = store.get_run(runs["big"])
    assert len(run.data.params) >= BIG_PARAMS
    assert run.data.params["p1234"] == "1234" + "v" * (PARAM_CHARS - 4)
    assert run.data.tags["t19"] == "19" + "t" * (TAG_CHARS - 2)
    assert len([k for k in run.data.metrics if k.startswith("m")]) == BIG_METRIC_KEYS
    # Read once, by the size of what it holds: one unit per 4 KB, one Query per MB.
    megabytes = usage.bytes_returned / 2**20
    assert usage.read_units <= usage.bytes_returned / 4096 + usage.request_count, usage
    assert usage.request_count <= math.ceil(megabytes) + 4, usage
    found = store.search_runs([experiment_id], "params.p1999 LIKE '1999%'", ViewType.ALL)
    assert [r.info.run_id for r in found] == [runs["big"]]
    assert found[0].data.params == run.data.params
    assert found[0].data.metrics == run.data.metrics
    by_metric = store.search_runs([experiment_id], "metrics.m04999 > 4998", ViewType.ALL)
    assert [r.info.run_id for r in by_metric] == [runs["big"]]
    by_tag = store.search_runs(
        [experiment_id], f"tags.t19 = '{run.data.tags['t19']}'", ViewType.ALL
    )
    assert [r.info.run_id for r in by_tag] == [runs["big"]]
