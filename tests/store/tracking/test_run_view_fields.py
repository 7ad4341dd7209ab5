"""Searches read only the attributes a run view needs (`run_items.VIEW_FIELDS`): every attribute
the store writes on a run's content items is either read or an index key, and a search returns
each run exactly as `get_run` does, whichever way it reads the run (in order, fetched one by one
with its buckets by key, or alone)."""

from __future__ import annotations

from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LoggedModelInput,
    LoggedModelOutput,
    Metric,
    Param,
    RunStatus,
    RunTag,
    ViewType,
)
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

from store.tracking.run_items import VIEW_FIELDS
from store.tracking.run_keys import content_pk

INDEX_KEYS = {"pk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"}
LONG_KEY = "\U0001d400" * 250  # 1000 bytes: its sort key holds a digest, the key is beside it


def _every_kind_of_run(store, experiment_id: str) -> list[str]:
    """Runs holding every kind of content item: params and tags (one with a long key), a
    hidden run name, dataset inputs with tags, model inputs and outputs, finished, deleted."""
    runs = []
    for i in range(12):
        run_id = store.create_run(experiment_id, f"user-{i}", 1000 + i, [], f"run-{i}").info.run_id
        runs.append(run_id)
        store.log_batch(
            run_id,
            [Metric("loss", 1 / (i + 1), 5, 2), Metric("acc", i / 10, 5, 2)],
            [Param("lr", str(i / 100)), Param(LONG_KEY, "long")],
            [RunTag("team", "vision"), RunTag(LONG_KEY, "long tag")],
        )
        if i % 3 == 0:
            store.update_run_info(run_id, RunStatus.FINISHED, 9000 + i, None)
    dataset = Dataset("train", "abc123", "local", "file:///data", '{"s": 1}', '{"rows": 3}')
    store.log_inputs(
        runs[1],
        [DatasetInput(dataset, [InputTag("mlflow.data.context", "training")])],
        [LoggedModelInput("m-input")],
    )
    store.log_outputs(runs[1], [LoggedModelOutput("m-output", 3)])
    store.delete_tag(runs[2], MLFLOW_RUN_NAME)  # the run keeps its name, out of its tags
    store.delete_run(runs[4])
    return runs


def test_every_attribute_written_on_content_items_is_read_or_an_index_key(dynalite_store):
    store = dynalite_store
    experiment_id = store.create_experiment("fields")
    _every_kind_of_run(store, experiment_id)
    written = set()
    for item in store.table.query(content_pk(experiment_id)):
        written |= set(item)
    # Also the core's `ml`, `ms` (its bucket layout), which the search test below cannot miss:
    # its runs have one bucket each.
    assert written - INDEX_KEYS <= set(VIEW_FIELDS), written - INDEX_KEYS - set(VIEW_FIELDS)
    # The workload wrote every kind of item the views read.
    assert {"k", "hidden", "ds", "digest", "tags", "model_id", "step", "deleted_time"} <= written


def _as_dict(run) -> dict:
    """A run's contents; like MLflow's SQL store, only `get_run` gives a run's model inputs."""
    return {
        "info": dict(run.info),
        "params": run.data.params,
        "tags": run.data.tags,
        "metrics": run.data.metrics,
        "inputs": [
            (d.dataset.name, d.dataset.digest, [(t.key, t.value) for t in d.tags])
            for d in run.inputs.dataset_inputs
        ],
        "outputs": [(o.model_id, o.step) for o in run.outputs.model_outputs],
    }


def test_searches_return_each_run_as_get_run_does(dynalite_store):
    store = dynalite_store
    experiment_id = store.create_experiment("views")
    runs = _every_kind_of_run(store, experiment_id)
    expected = {run_id: _as_dict(store.get_run(run_id)) for run_id in runs}
    assert [m.model_id for m in store.get_run(runs[1]).inputs.model_inputs] == ["m-input"]
    searches = {
        "in order": "",
        "a dense stretch of matches, in order": "tags.team = 'vision'",
        "fetched one by one": "attributes.status = 'FINISHED'",
        "alone": f"attributes.run_id = '{runs[1]}'",
        "one match in the param column": "params.lr = '0.01'",
    }
    for how, filter_string in searches.items():
        found = store.search_runs([experiment_id], filter_string, ViewType.ALL, max_results=100)
        assert found, how
        for run in found:
            assert _as_dict(run) == expected[run.info.run_id], how
    assert len(store.search_runs([experiment_id], "", ViewType.ALL)) == len(runs)
