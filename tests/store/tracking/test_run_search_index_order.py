"""Run searches the run index serves (start time leads the order): same answers as MLflow's
SqlAlchemyStore, with many start-time ties, several experiments, deleted runs among live ones,
filters that skip runs, secondary orders, and every page walked through the page tokens."""

from __future__ import annotations

import random
import uuid

import pytest
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
from run_differential import Pair, search, walk_pages

from store.tracking.run_keys import run_position

_VIEWS = [ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY, ViewType.ALL]
_START_TIMES = [1000, 1000, 1000, 2000, 2000, 3000, 500, 4000]  # many ties
_INDEX_ORDERS = [
    [],
    ["attributes.start_time DESC"],
    ["start_time"],
    ["attributes.start_time ASC"],
    ["created DESC"],
    ["start_time DESC", "metrics.m0"],
    ["start_time ASC", "params.p0 DESC"],
    ["attributes.start_time", "attributes.run_id DESC"],
    ["start_time DESC", "tags.t0", "metrics.m0 DESC"],
]
_FILTERS = [
    None,
    "metrics.m0 > 0.5",
    "params.p0 = 'a'",
    "attributes.status = 'FINISHED'",
    "tags.t0 != 'x'",
    "attributes.start_time >= 2000",
]


def build_runs(pair: Pair, rng: random.Random) -> list[str]:
    experiments = [pair.both("create_experiment", f"index-{i}")[0] for i in range(6)]
    for _ in range(90):
        with pair.run_id(rng) as run_id:
            experiment_id = rng.choice(experiments)
            pair.both("create_run", experiment_id, "u", rng.choice(_START_TIMES), [], "r")
        metrics = [Metric("m0", rng.random(), 1, 0)] if rng.random() < 0.8 else []
        params = [Param("p0", rng.choice("ab"))] if rng.random() < 0.8 else []
        tags = [RunTag("t0", rng.choice("xy"))] if rng.random() < 0.7 else []
        pair.both("log_batch", run_id, metrics, params, tags)
        if rng.random() < 0.4:
            pair.both("update_run_info", run_id, RunStatus.FINISHED, 5000, None)
        if rng.random() < 0.3:
            pair.both("delete_run", run_id)
    pair.both("delete_experiment", experiments[-1])
    return experiments


@pytest.mark.parametrize("seed", [11, 12])
def test_index_ordered_searches_match_sql_store(seed, dynalite_store, sql_store, monkeypatch):
    rng = random.Random(seed)
    pair = Pair(dynalite_store, sql_store, monkeypatch)
    experiments = build_runs(pair, rng)
    walks = 0
    for order_by in _INDEX_ORDERS:
        for filter_string in _FILTERS:
            view = rng.choice(_VIEWS)
            scope = rng.sample(experiments, rng.randint(1, len(experiments)))
            expected, _ = search(sql_store, scope, filter_string, view, 1000, order_by)
            actual, _ = search(dynalite_store, scope, filter_string, view, 1000, order_by)
            assert actual == expected, (filter_string, order_by, view, scope)
            walk_pages(sql_store, dynalite_store, scope, filter_string, view, order_by, rng)
            walks += 1
    assert walks == len(_INDEX_ORDERS) * len(_FILTERS)


def test_index_keys_sort_in_the_default_run_order():
    starts = [0, 1, -1, 5, 5, 10**12, -(10**12), 2**63 - 1, -(2**63), 1_700_000_000_000, None]
    ids = [uuid.UUID(int=random.Random(i).getrandbits(128)).hex for i in range(2 * len(starts))]
    runs = list(zip(starts * 2, ids, strict=True))
    by_key = sorted(runs, key=lambda run: run_position(*run))
    # SQL's order: start_time DESC (NULL last), then run id.
    expected = sorted(runs, key=lambda run: (run[0] is None, -(run[0] or 0), run[1]))
    assert by_key == expected
