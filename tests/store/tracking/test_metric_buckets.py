"""Latest metric values in buckets grown by linear hashing (store/tracking/metric_buckets.py):
routing, splits interrupted at every step by a dying writer, concurrent writers on one run. The
answers are compared with MLflow's SQL store fed the same points."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from mlflow.entities import Metric, ViewType
from run_differential import Pair, sql_value

from store.dynamo.errors import ConditionFailed
from store.dynamo.table import DynamoTable
from store.tracking.metric_buckets import NO_ORDER, Layout, key_hash
from store.tracking.run_keys import bucket_prefix, metrics_pk

# ---- routing ----------------------------------------------------------------------------------


def test_routing_follows_the_split_pointer_and_levels():
    keys = [f"key-{i}" for i in range(2000)]
    for level in range(4):
        for split in range(1 << level):
            layout = Layout(level, split)
            for key in keys:
                bucket = layout.bucket_of(key)
                assert 0 <= bucket < layout.count
                # a key's bucket is the one its hash names at that bucket's level
                assert key_hash(key) % (1 << layout.level_of(bucket)) == bucket


def test_layouts_advance_bucket_by_bucket_and_level_by_level():
    assert Layout(0, 0).after(0, 1) == Layout(1, 0)
    assert Layout(0, 0).after(0, 5) == Layout(5, 0)  # a new run's bucket split at once
    assert Layout(2, 1).after(1, 3) == Layout(2, 2)
    assert Layout(2, 1).after(3, 3) == Layout(3, 0)
    assert Layout(3, 2).count == 10


# ---- helpers ------------------------------------------------------------------------------------


def buckets_of(store, run_id: str) -> list[dict]:
    location = store._location(run_id)
    pk = metrics_pk(location.experiment_id)
    return list(store.table.query(pk, sk_prefix=bucket_prefix(location.position), consistent=True))


def assert_settled(store, run_id: str) -> None:
    """Every split finished: no bucket frozen, each key in exactly one bucket, in its home."""
    location = store._location(run_id)
    layout = Layout.of(store._core(location))
    buckets = buckets_of(store, run_id)
    assert len(buckets) == layout.count
    assert not [b for b in buckets if "frozen" in b]
    seen = [key for b in buckets for key in b["m"]]
    assert len(seen) == len(set(seen))
    for bucket in buckets:
        number = int(bucket["sk"].rsplit("#", 1)[-1])
        assert int(bucket["lvl"]) == layout.level_of(number)
        assert all(layout.bucket_of(key) == number for key in bucket["m"])
        # `hi` bounds every entry, so a write of points above it needs no condition per key
        assert bucket["hi"] >= max((e["o"] for e in bucket["m"].values()), default=NO_ORDER)


def assert_same_metrics(pair: Pair, run_id: str, keys) -> None:
    ours = pair.ours.get_run(run_id).data.metrics
    theirs = pair.oracle.get_run(run_id).data.metrics
    assert {k: sql_value(v) for k, v in ours.items()} == {
        k: sql_value(v) for k, v in theirs.items()
    }
    for key in keys:
        histories = [
            sorted(
                (m.step, m.timestamp, sql_value(m.value)) for m in s.get_metric_history(run_id, key)
            )
            for s in (pair.ours, pair.oracle)
        ]
        assert histories[0] == histories[1], key


# ---- a writer dying at each step of a split -----------------------------------------------------

_LONG = "x" * 60  # 8 such keys take one bucket past its split size


class Dies(Exception):
    pass


def _step(update) -> str:
    expression = update.expression()
    if "REMOVE" in expression:
        return "unfreeze"
    names = set(update.names.values())
    if "frozen" in names and "m" not in names:
        return "freeze"
    if "ml" in names:
        return "advance"
    return "write"


@pytest.mark.parametrize("dies_after", ["freeze", "children", "unfreeze", "advance"])
@pytest.mark.parametrize("keys", [8, 40], ids=["one-split", "new-run-grows-at-once"])
def test_a_writer_dying_after_any_split_step_loses_nothing(
    dynalite_store, sql_store, monkeypatch, dies_after, keys
):
    pair = Pair(dynalite_store, sql_store, monkeypatch)
    rng = random.Random(keys)
    experiment_id = pair.both("create_experiment", "splits")[0]
    with pair.run_id(rng) as run_id:
        pair.both("create_run", experiment_id, "u", 1, [], "r")
    pair.both("log_metric", run_id, Metric("first", 1.0, 1, 0))
    names = [f"{_LONG}{i:03d}" for i in range(keys)]
    batch = [Metric(name, float(i), 5, 1) for i, name in enumerate(names)]

    original_update, original_put = DynamoTable.update, DynamoTable.put
    state = {"died": False}

    def update(self, pk, sk, change):
        step = _step(change)
        result = original_update(self, pk, sk, change)
        if not state["died"] and step == dies_after:
            state["died"] = True
            raise Dies(step)
        return result

    def put(self, item, **kwargs):
        result = original_put(self, item, **kwargs)
        is_child = item["pk"].startswith("EXPMETRICS#") and "lvl" in item
        if not state["died"] and dies_after == "children" and is_child:
            state["died"] = True
            raise Dies("children")
        return result

    monkeypatch.setattr(DynamoTable, "update", update)
    monkeypatch.setattr(DynamoTable, "put", put)
    with pytest.raises(Dies):
        dynalite_store.log_batch(run_id, batch, [], [])
    monkeypatch.setattr(DynamoTable, "update", original_update)
    monkeypatch.setattr(DynamoTable, "put", original_put)
    assert state["died"]
    # Readers see every value there is, each key once, meanwhile.
    partial = dynalite_store.get_run(run_id).data.metrics
    assert partial["first"] == 1.0
    assert set(partial) <= {"first", *names}
    assert all(partial[name] == float(i) for i, name in enumerate(names) if name in partial)
    # The client repeats the call that failed (the SQL store took it the first time): that
    # next write finishes the split.
    dynalite_store.log_batch(run_id, batch, [], [])
    pair.oracle.log_batch(run_id, batch, [], [])
    assert_settled(dynalite_store, run_id)
    assert_same_metrics(pair, run_id, ["first", names[0]])
    # Another writer touches every key (newer and older points, and new keys).
    later = [Metric(name, float(-i), 5 + (i % 2), 1 + (i % 3)) for i, name in enumerate(names)]
    later += [Metric(f"{_LONG}new{i}", 2.0, 9, 9) for i in range(keys)]
    pair.both("log_batch", run_id, later, [], [])
    assert_settled(dynalite_store, run_id)
    assert_same_metrics(pair, run_id, ["first", *names[:5]])
    filters = [f"metrics.`{names[0]}` > -5", f"metrics.`{names[-1]}` < 0"]
    for filter_string in filters:
        ours = [
            r.info.run_id
            for r in dynalite_store.search_runs([experiment_id], filter_string, ViewType.ALL)
        ]
        theirs = [
            r.info.run_id
            for r in sql_store.search_runs([experiment_id], filter_string, ViewType.ALL)
        ]
        assert ours == theirs


# ---- concurrent writers -----------------------------------------------------------------------

_THREADS = 8
_KEYS = 2000


def test_concurrent_writers_of_new_keys_keep_every_latest_value(dynalite_store, sql_store):
    experiment_id = dynalite_store.create_experiment("busy")
    run_id = dynalite_store.create_run(experiment_id, "u", 1, [], "busy").info.run_id
    sql_experiment = sql_store.create_experiment("busy")
    sql_run = sql_store.create_run(sql_experiment, "u", 1, [], "busy").info.run_id
    rng = random.Random(5)
    batches = []
    for _ in range(_THREADS):
        keys = rng.sample(range(_KEYS), _KEYS // 2)  # workers overlap on half the keys
        points = [
            Metric(f"k{key:04d}", rng.random(), rng.randint(1, 9), rng.randint(0, 3))
            for key in keys
        ]
        batches.append([points[i : i + 250] for i in range(0, len(points), 250)])
    barrier = threading.Barrier(_THREADS)

    def log(worker: int) -> None:
        barrier.wait()
        for batch in batches[worker]:
            dynalite_store.log_batch(run_id, batch, [], [])

    with ThreadPoolExecutor(_THREADS) as pool:
        list(pool.map(log, range(_THREADS)))
    for worker_batches in batches:
        for batch in worker_batches:
            sql_store.log_batch(sql_run, batch, [], [])
    ours = dynalite_store.get_run(run_id).data.metrics
    theirs = sql_store.get_run(sql_run).data.metrics
    assert len(ours) == len(theirs) > _KEYS * 0.9
    assert ours == theirs
    assert_settled(dynalite_store, run_id)
    layout = Layout.of(dynalite_store._core(dynalite_store._location(run_id)))
    assert layout.count >= len(ours) / 16  # the run grew: buckets stay small
    page = dynalite_store.search_runs([experiment_id], "metrics.k0001 >= 0", ViewType.ALL)
    assert [r.info.run_id for r in page] == ([run_id] if "k0001" in ours else [])


def test_a_lost_race_writes_only_keys_still_newer(dynalite_store, monkeypatch):
    experiment_id = dynalite_store.create_experiment("race")
    run_id = dynalite_store.create_run(experiment_id, "u", 1, [], "r").info.run_id
    dynalite_store.log_batch(run_id, [Metric("a", 1.0, 1, 1), Metric("b", 1.0, 1, 1)], [], [])
    original = DynamoTable.update
    seen = {"raced": False, "refused": 0}

    def update(self, pk, sk, change):
        if not seen["raced"] and pk.startswith("EXPMETRICS#"):
            seen["raced"] = True  # another writer logs a newer "a" first
            dynalite_store.log_metric(run_id, Metric("a", 9.0, 1, 5))
        try:
            return original(self, pk, sk, change)
        except ConditionFailed:
            seen["refused"] += 1
            raise

    monkeypatch.setattr(DynamoTable, "update", update)
    dynalite_store.log_batch(run_id, [Metric("a", 2.0, 1, 2), Metric("b", 2.0, 1, 2)], [], [])
    assert seen["refused"] == 1  # the first write lost, the second wrote "b" only
    assert dynalite_store.get_run(run_id).data.metrics == {"a": 9.0, "b": 2.0}
    assert len(dynalite_store.get_metric_history(run_id, "a")) == 3
