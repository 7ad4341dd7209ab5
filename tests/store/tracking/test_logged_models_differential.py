"""Logged-model search on DynamoDB gives what MLflow's SqlAlchemyStore (sqlite) gives.

One seeded random workload goes into both stores through the same public calls, with a shared
clock so creation order is identical; every filter × order × page size is then compared page by
page. Values are lower-case so sqlite's case-insensitive LIKE agrees with MLflow's LIKE.
"""

from __future__ import annotations

import random
import uuid

import pytest
from mlflow.entities import LoggedModelParameter, LoggedModelStatus, LoggedModelTag, Metric
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

import store.tracking.logged_models as dynamo_logged_models
from store.tracking import DynamoTrackingStore

SEED = 20261130
N_MODELS = 40


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="module")
def stores(tmp_path_factory, dynalite_endpoint):
    tmp = tmp_path_factory.mktemp("lm-diff")
    clock = Clock()
    patch = pytest.MonkeyPatch()
    patch.setattr(dynamo_logged_models, "get_current_time_millis", clock)
    patch.setattr("mlflow.store.tracking.sqlalchemy_store.get_current_time_millis", clock)
    host_port = dynalite_endpoint.removeprefix("http://")
    ours = DynamoTrackingStore(f"dynamodb://{host_port}/lmd{uuid.uuid4().hex[:8]}", str(tmp / "a"))
    oracle = SqlAlchemyStore(f"sqlite:///{tmp}/oracle.db", str(tmp / "b"))
    try:
        yield ours, oracle, _seed(ours, oracle, clock, random.Random(SEED))
    finally:
        patch.undo()
        oracle.engine.dispose()


def _seed(ours, oracle, clock, rng):
    experiments = {}
    for name in ("first", "second"):
        experiments[name] = (ours.create_experiment(name), oracle.create_experiment(name))
    runs = {
        name: (
            ours.create_run(ids[0], "u", 0, [], "r").info.run_id,
            oracle.create_run(ids[1], "u", 0, [], "r").info.run_id,
        )
        for name, ids in experiments.items()
    }
    for i in range(N_MODELS):
        clock.now += rng.choice([1, 1, 2, 5])
        exp_name = rng.choice(["first", "first", "second"])
        tags = [
            LoggedModelTag(key, rng.choice(["a", "b", "ab", "ba_x"]))
            for key in ("team", "stage", "owner")
            if rng.random() < 0.6
        ]
        params = [
            LoggedModelParameter(key, rng.choice(["0.1", "0.01", "1", "10"]))
            for key in ("lr", "depth")
            if rng.random() < 0.7
        ]
        model_type = rng.choice([None, "sklearn", "torch"])
        metrics = _random_metrics(rng, clock.now)
        status = rng.choice([None, LoggedModelStatus.READY, LoggedModelStatus.FAILED])
        deleted = rng.random() < 0.1
        for index, store in enumerate((ours, oracle)):
            model = store.create_logged_model(
                experiments[exp_name][index],
                name=f"model-{i:02d}",
                tags=tags,
                params=params,
                model_type=model_type,
            )
            run_id = runs[exp_name][index]
            store.log_batch(run_id, [_with_model(m, model.model_id) for m in metrics], [], [])
            if status is not None:
                clock.now += 1
                store.finalize_logged_model(model.model_id, status)
                clock.now -= 1
            if deleted:
                store.delete_logged_model(model.model_id)
    return experiments


def _random_metrics(rng, now):
    metrics, used = [], set()
    for key in ("acc", "loss"):
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            timestamp, step = now - rng.randint(0, 3), rng.randint(0, 2)
            if (key, timestamp, step) in used:
                continue  # the SQL store's key for a model metric
            used.add((key, timestamp, step))
            dataset = rng.choice([None, ("train", "d1"), ("eval", "d2"), ("eval", "d3")])
            metrics.append(
                Metric(
                    key,
                    rng.choice([0.1, 0.25, 0.5, 0.5, 0.75, 0.9]),
                    timestamp,
                    step,
                    dataset_name=dataset[0] if dataset else None,
                    dataset_digest=dataset[1] if dataset else None,
                )
            )
    return metrics


def _with_model(metric: Metric, model_id: str) -> Metric:
    return Metric(
        metric.key,
        metric.value,
        metric.timestamp,
        metric.step,
        model_id=model_id,
        dataset_name=metric.dataset_name,
        dataset_digest=metric.dataset_digest,
    )


FILTERS = [
    None,
    "name = 'model-03'",
    "name LIKE 'model-1%'",
    "name ILIKE 'MODEL-2%'",
    "name != 'model-02'",
    "model_type = 'sklearn'",
    "model_type != 'torch'",
    "model_type IN ('sklearn', 'torch')",
    "model_type NOT IN ('torch')",
    "creation_timestamp > 1700000000040",
    "creation_time <= 1700000000060",
    "last_updated_timestamp >= 1700000000030",
    "metrics.acc > 0.5",
    "metrics.acc = 0.5",
    "metrics.loss <= 0.25",
    "metrics.acc >= 0.25 AND metrics.loss < 0.9",
    "params.lr = '0.1'",
    "params.depth LIKE '1%'",
    "params.lr != '10' AND tags.team = 'a'",
    "tags.team = 'ab'",
    "tags.stage LIKE '%a%'",
    "tags.owner ILIKE 'B%'",
    "tags.owner != 'b'",
    "status = 'READY'",
]
DATASETS = [
    None,
    [{"dataset_name": "train"}],
    [{"dataset_name": "eval", "dataset_digest": "d2"}],
    [{"dataset_name": "train"}, {"dataset_name": "eval", "dataset_digest": "d3"}],
]
ORDERS = [
    None,
    [{"field_name": "name"}],
    [{"field_name": "name", "ascending": False}],
    [{"field_name": "model_type"}],
    [{"field_name": "creation_timestamp", "ascending": True}],
    [{"field_name": "last_updated_timestamp", "ascending": False}],
    [{"field_name": "metrics.acc", "ascending": False}],
    [{"field_name": "metrics.loss"}, {"field_name": "name", "ascending": False}],
    [{"field_name": "metrics.acc", "dataset_name": "eval"}],
    [{"field_name": "metrics.acc", "dataset_name": "eval", "dataset_digest": "d3"}],
    [{"field_name": "status", "ascending": False}],
]


def _pages(store, experiment_ids, filter_string, datasets, order_by, size):
    pages, token = [], None
    for _ in range(N_MODELS + 2):
        page = store.search_logged_models(
            experiment_ids,
            filter_string=filter_string,
            datasets=datasets,
            order_by=order_by,
            max_results=size,
            page_token=token,
        )
        pages.append([_comparable(m) for m in page])
        token = page.token
        if not token:
            return pages
    raise AssertionError("pagination did not end")


def _comparable(model) -> dict:
    return {
        "name": model.name,
        "status": model.status,
        "model_type": model.model_type,
        "creation_timestamp": model.creation_timestamp,
        "last_updated_timestamp": model.last_updated_timestamp,
        "tags": model.tags,
        "params": model.params,
        "metrics": sorted(
            (m.key, m.value, m.timestamp, m.step, m.dataset_name, m.dataset_digest)
            for m in model.metrics or []
        ),
    }


@pytest.mark.parametrize("filter_string", FILTERS)
def test_filters_match_sql_store(stores, filter_string):
    ours, oracle, experiments = stores
    ids = list(zip(*experiments.values(), strict=True))
    for datasets, size in [(None, 7), *((d, 100) for d in DATASETS)]:
        expected = _pages(oracle, list(ids[1]), filter_string, datasets, None, size)
        got = _pages(ours, list(ids[0]), filter_string, datasets, None, size)
        assert got == expected, (filter_string, datasets, size)


@pytest.mark.parametrize("order_by", ORDERS)
def test_orders_match_sql_store(stores, order_by):
    ours, oracle, experiments = stores
    ids = list(zip(*experiments.values(), strict=True))
    for filter_string, size in [(None, 4), ("metrics.acc > 0.1", 100), ("tags.team != 'b'", 9)]:
        expected = _pages(oracle, list(ids[1]), filter_string, None, order_by, size)
        got = _pages(ours, list(ids[0]), filter_string, None, order_by, size)
        assert got == expected, (order_by, filter_string, size)


def test_single_experiment_scope_matches(stores):
    ours, oracle, experiments = stores
    ours_id, oracle_id = experiments["second"]
    assert _pages(ours, [ours_id], None, None, None, 5) == _pages(
        oracle, [oracle_id], None, None, None, 5
    )
