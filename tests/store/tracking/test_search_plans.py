"""What a selective search reads on an experiment of thousands of runs, counted with the store's
meter on dynalite (store/README.md, "Search"): filters the index can answer read the matching
entries and the page, not the experiment."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
from store_support import ARTIFACT_ROOT

from store.dynamo.capacity import CapacityMeter, Usage
from store.tracking import DynamoTrackingStore

RUNS = 3000
RARE = (17, 1234, 2999)  # the runs tagged team=rare, named zz..., FAILED


@pytest.fixture(scope="module")
def world(dynalite_endpoint: str):
    host_port = dynalite_endpoint.removeprefix("http://")
    store = DynamoTrackingStore(f"dynamodb://{host_port}/plans", ARTIFACT_ROOT)
    experiment_id = store.create_experiment("many")

    def make(i: int) -> str:
        team = "rare" if i in RARE else f"team-{i % 7}"
        name = f"zz-{i}" if i in RARE else f"run-{i}"
        tags = [RunTag("team", team), RunTag("mlflow.source.name", "train.py")]
        run_id = store.create_run(experiment_id, "u", 1000 + i, tags, name).info.run_id
        model = "a" if i in RARE else f"m-{i % 5}"
        store.log_batch(
            run_id, [Metric("acc", 0.5 + (i % 100) / 1000, 1, 0)], [Param("model", model)], []
        )
        if i in RARE:
            store.update_run_info(run_id, RunStatus.FAILED, 2000 + i, None)
        return run_id

    with ThreadPoolExecutor(8) as pool:
        run_ids = list(pool.map(make, range(RUNS)))
    meter = CapacityMeter()
    with meter.installed():
        yield store, experiment_id, run_ids, meter


def searched(world, filter_string: str, **kwargs) -> tuple[list[str], Usage]:
    store, experiment_id, _, meter = world
    found = []
    usage = meter.measure(
        lambda: found.extend(
            r.info.run_id
            for r in store.search_runs([experiment_id], filter_string, ViewType.ALL, **kwargs)
        )
    )
    return found, usage


def expected(world) -> list[str]:
    _, _, run_ids, _ = world
    return [run_ids[i] for i in sorted(RARE, reverse=True)]  # newest first


def test_a_prefix_of_run_names_that_matches_nothing_is_one_index_query(world):
    found, usage = searched(world, "attributes.run_name LIKE 'aa%'")
    assert found == []
    assert usage.requests == {"Query": 1}, usage
    assert usage.read_units <= 1, usage


@pytest.mark.parametrize(
    "filter_string",
    [
        "attributes.run_name LIKE 'zz%'",
        "tags.team = 'rare'",
        "attributes.status = 'FAILED'",
        "tags.`mlflow.runName` LIKE 'zz-%'",
        "params.model = 'a'",
    ],
)
def test_selective_filters_read_the_matches_not_the_experiment(world, filter_string):
    found, usage = searched(world, filter_string)
    assert found == expected(world)
    # The index entries that match, then each matching run: a few units whatever the runs.
    assert usage.request_count <= 2 + 2 * len(RARE) + 2, usage
    assert usage.read_units <= 4 + 2 * len(RARE), usage


def test_the_first_page_in_default_order_reads_the_page(world):
    store, experiment_id, run_ids, meter = world
    usage = meter.measure(
        lambda: store.search_runs([experiment_id], "", ViewType.ACTIVE_ONLY, max_results=100)
    )
    assert usage.requests == {"Query": 2}, usage  # runs ∥ their metric buckets, in order
    assert usage.read_units <= 100, usage


@pytest.mark.parametrize("index", list(range(len(RARE))))
def test_a_run_name_equality_reads_the_match_not_the_experiment(world, index):
    _, _, run_ids, _ = world
    found, usage = searched(world, f"attributes.run_name = 'zz-{RARE[index]}'")
    assert found == [run_ids[RARE[index]]]
    assert usage.request_count <= 4, usage
    assert usage.read_units <= 6, usage


def test_the_ui_experiment_page_reads_the_page_not_the_experiment(world):
    # What MLflow's UI sends when an experiment page opens: newest runs first, active only.
    store, experiment_id, run_ids, meter = world
    found = []
    usage = meter.measure(
        lambda: found.extend(
            store.search_runs(
                [experiment_id],
                "",
                ViewType.ACTIVE_ONLY,
                max_results=100,
                order_by=["attributes.start_time DESC"],
            )
        )
    )
    assert [r.info.run_id for r in found] == run_ids[::-1][:100]
    assert usage.request_count <= 4, usage
    assert usage.read_units <= 100, usage


def test_a_metric_filter_reads_the_metrics_and_the_matches_only(world):
    store, experiment_id, run_ids, meter = world
    everything = meter.measure(
        lambda: list(store.search_runs([experiment_id], "", ViewType.ALL, max_results=50000))
    )
    found, usage = searched(world, "metrics.acc > 0.99")
    assert found == []
    # The experiment's metric buckets (one per run), none of the runs' other items.
    assert usage.read_units < everything.read_units / 2, (usage, everything)
