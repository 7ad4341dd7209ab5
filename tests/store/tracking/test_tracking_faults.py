"""Tracking writes of several requests, each request failed in turn (dynalite).

After a failure a call is either fully done, not done at all, or completed by repeating it (as
MLflow's client does on TEMPORARILY_UNAVAILABLE); never left half done.
"""

from __future__ import annotations

from fault_support import RequestFaults, fails_unavailable, requests_of
from mlflow.entities import Metric, Param, RunTag, ViewType

_TAGS = [RunTag("team", "vision"), RunTag("purpose", "faults")]


def visible_runs(store, experiment_id: str, view=ViewType.ACTIVE_ONLY) -> list:
    return store.search_runs([experiment_id], "", view, max_results=1000)


def test_run_creation_failing_at_any_request_shows_no_run_without_its_tags(dynalite_store):
    store = dynalite_store
    faults = RequestFaults(store.table)
    probe = store.create_experiment("probe")
    sent = requests_of(faults, lambda: store.create_run(probe, "u", 1, _TAGS, "r"))
    assert len(sent) >= 3
    for fail_at in range(1, len(sent) + 1):
        experiment_id = store.create_experiment(f"runs-{fail_at}")
        create = lambda e=experiment_id: store.create_run(e, "u", 1, _TAGS, "r")  # noqa: E731
        fails_unavailable(faults, fail_at, create)
        assert visible_runs(store, experiment_id) == []
        run_id = create().info.run_id  # the client's retry
        [run] = visible_runs(store, experiment_id)
        assert run.info.run_id == run_id
        assert {t.key: t.value for t in _TAGS}.items() <= run.data.tags.items()


def batch(worker: int) -> tuple[list, list, list]:
    metrics = [
        Metric(f"m{k}", float(step * k), 1000 + step, step) for k in range(4) for step in range(30)
    ]
    params = [Param(f"p{k}", f"v{k}") for k in range(5)]
    tags = [RunTag(f"t{k}", f"w{worker}") for k in range(3)]
    return metrics, params, tags


def test_log_batch_failing_at_any_request_is_completed_by_repeating_it(dynalite_store):
    store = dynalite_store
    faults = RequestFaults(store.table)
    experiment_id = store.create_experiment("batches")
    metrics, params, tags = batch(0)
    probe = store.create_run(experiment_id, "u", 1, [], "probe").info.run_id
    sent = requests_of(faults, lambda: store.log_batch(probe, metrics, params, tags))
    assert len(sent) >= 4
    for fail_at in range(1, len(sent) + 1):
        run_id = store.create_run(experiment_id, "u", 1, [], f"r{fail_at}").info.run_id
        log = lambda r=run_id: store.log_batch(r, metrics, params, tags)  # noqa: E731
        fails_unavailable(faults, fail_at, log)
        log()  # the client's retry
        run = store.get_run(run_id)
        assert run.data.params == {p.key: p.value for p in params}
        assert {t.key: t.value for t in tags}.items() <= run.data.tags.items()
        for k in range(4):
            history = store.get_metric_history(run_id, f"m{k}")
            assert sorted((m.step, m.timestamp, m.value) for m in history) == [
                (step, 1000 + step, float(step * k)) for step in range(30)
            ]
            assert run.data.metrics[f"m{k}"] == float(29 * k)


def test_experiment_deletion_failing_at_any_request_never_leaves_active_runs_behind(
    dynalite_store,
):
    store = dynalite_store
    faults = RequestFaults(store.table)

    def experiment_with_runs(name: str) -> str:
        experiment_id = store.create_experiment(name)
        for index in range(3):
            store.create_run(experiment_id, "u", index + 1, [], f"r{index}")
        return experiment_id

    probe = experiment_with_runs("probe")
    sent = requests_of(faults, lambda: store.delete_experiment(probe))
    assert len(sent) >= 5
    for fail_at in range(1, len(sent) + 1):
        experiment_id = experiment_with_runs(f"doomed-{fail_at}")
        delete = lambda e=experiment_id: store.delete_experiment(e)  # noqa: E731
        fails_unavailable(faults, fail_at, delete)
        if store.get_experiment(experiment_id).lifecycle_stage == "deleted":
            assert visible_runs(store, experiment_id) == []
        delete()  # the client's retry
        assert store.get_experiment(experiment_id).lifecycle_stage == "deleted"
        assert visible_runs(store, experiment_id) == []
        assert len(visible_runs(store, experiment_id, ViewType.DELETED_ONLY)) == 3
        restore = lambda e=experiment_id: store.restore_experiment(e)  # noqa: E731
        fails_unavailable(faults, fail_at, restore)
        if store.get_experiment(experiment_id).lifecycle_stage == "active":
            assert len(visible_runs(store, experiment_id)) == 3
        restore()
        assert store.get_experiment(experiment_id).lifecycle_stage == "active"
        assert len(visible_runs(store, experiment_id)) == 3
