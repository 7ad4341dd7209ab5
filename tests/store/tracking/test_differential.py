"""Our store (on dynalite) against MLflow's SqlAlchemyStore (on sqlite): the same workload, the
same questions, the same answers.

Each seed builds a random workload (experiments, runs with params, tags, NaN/±inf metrics on
several steps, datasets, renamed, finished, deleted and restored runs, a deleted experiment) in
both stores with the same run ids and clock, then asks hundreds of generated searches (filters
over metrics/params/tags/attributes/datasets, orders, view types) and walks pages of several
sizes to the end. Results must be identical: run ids in order and the runs' data. Our store
keeps ±inf metrics as logged where the SQL store stores ±max double, so values are compared in
the SQL store's terms.
"""

from __future__ import annotations

import math
import random

import pytest
from mlflow.entities import (
    Metric,
    Param,
    RunTag,
    ViewType,
)
from mlflow.exceptions import MlflowException
from run_differential import (
    MAX_DOUBLE,
    VIEWS,
    Pair,
    build_workload,
    normalized_run,
    random_filter,
    random_order,
    search,
    sql_value,
    walk_pages,
)


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_search_runs_matches_sql_store(seed, dynalite_store, sql_store, monkeypatch):
    rng = random.Random(seed)
    pair = Pair(dynalite_store, sql_store, monkeypatch)
    experiments = build_workload(pair, rng)
    run_ids = [r.info.run_id for r in sql_store.search_runs(experiments, None, ViewType.ALL)]
    compared = 0
    for question in range(160):
        filter_string = random_filter(rng, run_ids)
        order_by = random_order(rng)
        view = rng.choice(VIEWS)
        scope = rng.sample(experiments, rng.randint(1, 3))
        expected, _ = search(sql_store, scope, filter_string, view, 1000, order_by)
        actual, _ = search(dynalite_store, scope, filter_string, view, 1000, order_by)
        assert actual == expected, (filter_string, order_by, view, scope)
        compared += 1
        if question % 8 == 0 and isinstance(expected, list):
            walk_pages(sql_store, dynalite_store, scope, filter_string, view, order_by, rng)
    assert compared == 160


@pytest.mark.parametrize("seed", [404])
def test_runs_histories_and_experiments_match_sql_store(
    seed, dynalite_store, sql_store, monkeypatch
):
    rng = random.Random(seed)
    pair = Pair(dynalite_store, sql_store, monkeypatch)
    experiments = build_workload(pair, rng)
    runs = sql_store.search_runs(experiments, None, ViewType.ALL)
    for run in runs:
        run_id = run.info.run_id
        assert normalized_run(dynalite_store.get_run(run_id)) == normalized_run(run)
        for key in ("m0", "m1", "m2", "absent"):
            assert histories(dynalite_store, run_id, key) == histories(sql_store, run_id, key)
            for max_results in (1, 2, 3, 100):
                steps = rng.choice([(None, None), (0, 2), (1, 1)])
                assert interval(dynalite_store, run_id, key, max_results, steps) == interval(
                    sql_store, run_id, key, max_results, steps
                )
            steps = rng.sample(range(10), 3)
            assert from_steps(dynalite_store, run_id, key, steps) == from_steps(
                sql_store, run_id, key, steps
            )
    assert dataset_summaries(dynalite_store, experiments) == dataset_summaries(
        sql_store, experiments
    )
    compare_experiment_searches(sql_store, dynalite_store, rng)


def dataset_summaries(store, experiments) -> list[tuple]:
    return sorted(
        (s.experiment_id, s.name, s.digest, s.context or "")
        for s in store._search_datasets(experiments)
    )


def histories(store, run_id, key):
    return [
        (m.key, sql_value(m.value), m.timestamp, m.step)
        for m in store.get_metric_history(run_id, key)
    ]


def interval(store, run_id, key, max_results, steps):
    points = store.get_metric_history_bulk_interval([run_id], key, max_results, *steps)
    return [(m.run_id, sql_value(m.value), m.timestamp, m.step) for m in points]


def from_steps(store, run_id, key, steps):
    points = store.get_metric_history_bulk_interval_from_steps(run_id, key, steps, 5)
    return [(m.run_id, sql_value(m.value), m.timestamp, m.step) for m in points]


def compare_experiment_searches(oracle, ours, rng: random.Random) -> None:
    filters = [
        None,
        "name = 'exp-a'",
        "name LIKE 'exp%'",
        "name ILIKE 'EXP-B%'",
        "name != 'Default'",
        "tags.team = 'x'",
        "tags.team IS NULL",
        "tags.note IS NOT NULL",
        "creation_time > 10000000000001",
        "last_update_time <= 10000000000100",
        "experiment_id IN ('0', '2')",
        "name LIKE '%renamed' AND tags.team != 'y'",
        "name > 'a'",
        "creation_time LIKE '1'",
        "creation_time = 1.5",
        "last_update_time > 'abc'",
    ]
    orders = [None, ["name"], ["name DESC"], ["creation_time"], ["last_update_time DESC"],
              ["experiment_id DESC"], ["tags.team"]]  # fmt: skip
    for filter_string in filters:
        for order_by in orders:
            for view in VIEWS:
                size = rng.choice([1, 2, 10])
                expected = experiment_pages(oracle, view, size, filter_string, order_by)
                actual = experiment_pages(ours, view, size, filter_string, order_by)
                assert actual == expected, (filter_string, order_by, view, size)


def experiment_pages(store, view, size, filter_string, order_by):
    pages, token = [], None
    for _ in range(50):
        try:
            page = store.search_experiments(view, size, filter_string, order_by, token)
        except MlflowException as exc:
            return ("error", exc.error_code, exc.message)
        pages.append([_experiment(e) for e in page])
        token = page.token
        if token is None:
            return pages
    raise AssertionError("pages never ended")


def _experiment(experiment) -> tuple:
    times = () if experiment.experiment_id == "0" else (
        experiment.creation_time,
        experiment.last_update_time,
    )  # fmt: skip
    return (
        experiment.experiment_id,
        experiment.name,
        experiment.lifecycle_stage,
        experiment.artifact_location,
        tuple(sorted(experiment.tags.items())),
        times,
    )


@pytest.mark.parametrize(
    "filter_string",
    [
        "metrics.m0 LIKE '1'",
        "params.p0 > '1'",
        "foo.bar = 1",
        "attributes.status > 'x'",
        "metrics.m0 = 'abc'",
        "params.p0 = 1",
        "attributes.start_time = 'x'",
        "datasets.foo = 'x'",
        "metrics.m0 IS NULL",
        "attributes.status IN ('a')",
        "run_id IN ()",
        "metrics.m0 > 1 OR metrics.m1 > 1",
        "(",
    ],
)
def test_invalid_searches_fail_like_sql_store(filter_string, moto_store, sql_store):
    expected, _ = search(sql_store, ["0"], filter_string, ViewType.ALL, 10, None)
    actual, _ = search(moto_store, ["0"], filter_string, ViewType.ALL, 10, None)
    assert actual == expected
    assert isinstance(expected, tuple)


_EDGE_FILTERS = [
    "params.p ILIKE '%Ü%'",
    "params.p ILIKE '%ü%'",
    "params.p LIKE 'ÜNÏ'",
    "params.q ILIKE 'a_c'",
    "params.q LIKE 'a\\%'",
    "params.q LIKE '%\\%%'",
    "params.e = ''",
    "params.e != 'x'",
    "metrics.n != 0",
    "metrics.n = 0",
    "metrics.n >= 0",
    "metrics.i > 1e300",
    "metrics.i = 1.7976931348623157e308",
    "metrics.ni < -1e300",
    "tags.multi LIKE '%line%'",
    "attributes.run_name = 'edge'",
]


@pytest.mark.parametrize("filter_string", _EDGE_FILTERS)
def test_edge_cases_match_sql_store(filter_string, moto_store, sql_store, monkeypatch):
    pair = Pair(moto_store, sql_store, monkeypatch)
    rng = random.Random(7)
    values = [("ünï", "ABC", ""), ("x", "a%", "x"), ("ÜNÏ", "a\\%b", "y")]
    for index, (p, q, e) in enumerate(values):
        with pair.run_id(rng) as run_id:
            pair.both("create_run", "0", "u", 1000 + index, [], "edge")
        params = [Param("p", p), Param("q", q), Param("e", e)]
        metrics = [
            Metric("n", [math.nan, 0.0, 1.0][index], 1, 0),
            Metric("i", [math.inf, MAX_DOUBLE, 1.0][index], 1, 0),
            Metric("ni", [-math.inf, -1.0, 0.0][index], 1, 0),
        ]
        pair.both("log_batch", run_id, metrics, params, [RunTag("multi", "two\nlines")])
    for order_by in ([], ["metrics.n"], ["metrics.n DESC"], ["metrics.i DESC", "params.p"]):
        expected, _ = search(sql_store, ["0"], filter_string, ViewType.ALL, 100, order_by)
        actual, _ = search(moto_store, ["0"], filter_string, ViewType.ALL, 100, order_by)
        assert actual == expected, order_by
