"""Concurrent writers against a real DynamoDB server process (dynalite)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

_THREADS = 8
_TIMEOUT_S = 300


def run_in_parallel(task, count: int) -> list:
    barrier = threading.Barrier(count)

    def start(index: int):
        barrier.wait()
        try:
            return ("ok", task(index))
        except MlflowException as exc:
            return ("error", exc.error_code)

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(start, index) for index in range(count)]
        return [future.result(timeout=_TIMEOUT_S) for future in futures]


def test_parallel_log_batch_on_one_run_loses_nothing(dynalite_store):
    experiment_id = dynalite_store.create_experiment("parallel")
    run_id = dynalite_store.create_run(experiment_id, "u", 1, [], "busy").info.run_id
    batches = 5

    def log(worker: int):
        for batch in range(batches):
            name = f"w{worker}b{batch}"
            metrics = [Metric(f"{name}-m", float(step), 1, step) for step in range(30)]
            metrics.append(Metric("shared", float(worker * 100 + batch), worker, batch))
            dynalite_store.log_batch(
                run_id, metrics, [Param(f"{name}-p", name)], [RunTag(f"{name}-t", name)]
            )

    assert run_in_parallel(log, _THREADS) == [("ok", None)] * _THREADS
    run = dynalite_store.get_run(run_id)
    expected = {f"w{w}b{b}" for w in range(_THREADS) for b in range(batches)}
    assert set(run.data.params) == {f"{n}-p" for n in expected}
    assert {f"{n}-t" for n in expected} <= set(run.data.tags)
    assert {f"{n}-m" for n in expected} <= set(run.data.metrics)
    assert run.data.metrics["shared"] == float((_THREADS - 1) * 100 + batches - 1)
    assert len(dynalite_store.get_metric_history(run_id, "shared")) == _THREADS * batches
    assert all(
        len(dynalite_store.get_metric_history(run_id, f"{n}-m")) == 30 for n in list(expected)[:5]
    )


def test_parallel_create_experiment_with_one_name_has_one_winner(dynalite_store):
    results = run_in_parallel(lambda _: dynalite_store.create_experiment("contested"), _THREADS)
    winners = [value for outcome, value in results if outcome == "ok"]
    assert len(winners) == 1
    losers = [result for result in results if result[0] == "error"]
    assert losers == [("error", "RESOURCE_ALREADY_EXISTS")] * (_THREADS - 1)
    assert dynalite_store.get_experiment_by_name("contested").experiment_id == winners[0]


def test_parallel_renames_onto_one_name_have_one_winner(dynalite_store):
    ids = [dynalite_store.create_experiment(f"source-{i}") for i in range(_THREADS)]
    results = run_in_parallel(
        lambda i: dynalite_store.rename_experiment(ids[i], "target"), _THREADS
    )
    assert sum(outcome == "ok" for outcome, _ in results) == 1
    named = [i for i in ids if dynalite_store.get_experiment(i).name == "target"]
    assert len(named) == 1
    assert dynalite_store.get_experiment_by_name("target").experiment_id == named[0]


def test_parallel_param_conflicts_keep_the_first_value(dynalite_store):
    experiment_id = dynalite_store.create_experiment("params")
    run_id = dynalite_store.create_run(experiment_id, "u", 1, [], "p").info.run_id
    results = run_in_parallel(
        lambda i: dynalite_store.log_param(run_id, Param("lr", str(i))), _THREADS
    )
    assert sum(outcome == "ok" for outcome, _ in results) == 1
    assert [value for outcome, value in results if outcome == "error"] == [
        "INVALID_PARAMETER_VALUE"
    ] * (_THREADS - 1)
    assert len(dynalite_store.get_run(run_id).data.params) == 1


def test_batches_racing_on_a_new_param_keep_one_value_and_the_losers_metrics_out(dynalite_store):
    experiment_id = dynalite_store.create_experiment("param-race")
    for attempt in range(5):
        run_id = dynalite_store.create_run(experiment_id, "u", attempt, [], "p").info.run_id

        def log(i: int, run_id=run_id):
            metrics = [Metric(f"only-{i}", 1.0, 1, 0)]
            params = [Param("lr", str(i)), Param(f"own-{i}", "x")]
            dynalite_store.log_batch(run_id, metrics, params, [RunTag(f"tag-{i}", "x")])

        results = run_in_parallel(log, _THREADS)
        winners = [i for i, (outcome, _) in enumerate(results) if outcome == "ok"]
        assert len(winners) == 1
        assert [r for r in results if r[0] == "error"] == [("error", "INVALID_PARAMETER_VALUE")] * (
            _THREADS - 1
        )
        run = dynalite_store.get_run(run_id)
        (winner,) = winners
        assert run.data.params["lr"] == str(winner)
        # A loser wrote at most its other new params (params go first), never metrics or tags.
        assert set(run.data.metrics) == {f"only-{winner}"}
        assert {k for k in run.data.tags if k.startswith("tag-")} == {f"tag-{winner}"}
        assert f"own-{winner}" in run.data.params
        assert set(run.data.params) <= {"lr", *(f"own-{i}" for i in range(_THREADS))}


def test_delete_run_racing_log_metric_ends_deleted(dynalite_store):
    experiment_id = dynalite_store.create_experiment("delete-race")
    run_id = dynalite_store.create_run(experiment_id, "u", 1, [], "d").info.run_id

    def act(i: int):
        if i == 0:
            return dynalite_store.delete_run(run_id)
        for step in range(5):
            dynalite_store.log_metric(run_id, Metric("m", float(step), 1, step))
        return None

    results = run_in_parallel(act, 4)
    assert results[0] == ("ok", None)
    assert all(r in (("ok", None), ("error", "INVALID_PARAMETER_VALUE")) for r in results[1:])
    run = dynalite_store.get_run(run_id)
    assert run.info.lifecycle_stage == "deleted"
    history = dynalite_store.get_metric_history(run_id, "m")
    if "m" in run.data.metrics:  # what was accepted is whole: latest value and history agree
        assert run.data.metrics["m"] == max(h.value for h in history)


def test_many_writers_of_one_run_keep_every_point_and_the_true_latest(dynalite_store):
    experiment_id = dynalite_store.create_experiment("many-writers")
    run_id = dynalite_store.create_run(experiment_id, "u", 1, [], "busy").info.run_id
    batches = 50

    def log(worker: int):
        for batch in range(batches):
            metrics = [
                # Every worker logs step `batch` at timestamp 7: the value breaks the tie.
                Metric("tied", float(worker), 7, batch),
                # Later steps win over later timestamps.
                Metric("ordered", float(worker * batches + batch), 1000 - batch, batch),
                Metric(f"own-{worker}", float(batch), batch, batch),
            ]
            params = [Param("shared", "same"), Param(f"p-{worker}-{batch}", str(batch))]
            tags = [RunTag(f"t-{worker}", str(batch))]
            dynalite_store.log_batch(run_id, metrics, params, tags)

    assert run_in_parallel(log, _THREADS) == [("ok", None)] * _THREADS
    run = dynalite_store.get_run(run_id)
    assert run.data.params == {
        "shared": "same",
        **{f"p-{w}-{b}": str(b) for w in range(_THREADS) for b in range(batches)},
    }
    assert {f"t-{w}": str(batches - 1) for w in range(_THREADS)}.items() <= run.data.tags.items()
    assert run.data.metrics["tied"] == float(_THREADS - 1)
    assert run.data.metrics["ordered"] == float((_THREADS - 1) * batches + batches - 1)
    for key, expected in {
        "tied": {(b, 7, float(w)) for w in range(_THREADS) for b in range(batches)},
        "ordered": {
            (b, 1000 - b, float(w * batches + b)) for w in range(_THREADS) for b in range(batches)
        },
        "own-3": {(b, b, float(b)) for b in range(batches)},
    }.items():
        history = [
            (m.step, m.timestamp, m.value) for m in dynalite_store.get_metric_history(run_id, key)
        ]
        assert len(history) == len(set(history)) == len(expected), key
        assert set(history) == expected, key
