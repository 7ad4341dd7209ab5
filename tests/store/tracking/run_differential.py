"""The workload, the generated questions and the comparisons of the differential run search
tests (our store against MLflow's SqlAlchemyStore); no tests here."""

from __future__ import annotations

import math
import random
import uuid
from contextlib import contextmanager

from mlflow.entities import (
    Dataset,
    DatasetInput,
    ExperimentTag,
    InputTag,
    Metric,
    Param,
    RunStatus,
    RunTag,
    ViewType,
)
from mlflow.exceptions import MlflowException

import store.tracking.experiments
import store.tracking.runs

MAX_DOUBLE = 1.7976931348623157e308
VIEWS = [ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY, ViewType.ALL]
_PARAM_VALUES = ["1", "10", "2", "abc", "ABC", "a%b", "a_b", "", "ünï", " x ", "abd"]
_PATTERNS = ["a%", "%b", "_b_", "A%", "%", "1%", "a_b", "%x%", "ab_", "%Ü%", "%ü%"]
_METRIC_VALUES = [0.0, 1.0, -1.0, 2.5, 1e10, math.nan, math.inf, -math.inf, 3.0, -0.5]
_FILTER_NUMBERS = ["0", "1", "-1", "2.5", "1e10", "3", "-0.5", "1.7976931348623157e308"]
_RUN_NAMES = ["alpha", "beta", "Alpha-1", "gamma_x", "δelta", "50%", "alpha"]
_DATASETS = [("ds1", "d1"), ("ds2", "d2"), ("Train", "x9")]
_CONTEXTS = ["training", "eval", None]
_ORDER_KEYS = [
    "metrics.m0",
    "metrics.`m1`",
    "metrics.m2",
    "params.p0",
    "params.p1",
    "tags.t0",
    "tags.`mlflow.runName`",
    "attributes.start_time",
    "attributes.end_time",
    "attributes.run_name",
    "attributes.status",
    "attributes.user_id",
    "attributes.run_id",
    "created",
]


class Pair:
    """The two stores, driven with the same clock and the same run ids."""

    def __init__(self, ours, oracle, monkeypatch) -> None:
        self.ours, self.oracle = ours, oracle
        self.now = 10**13  # later than any real clock: the Default experiments stay oldest
        for module in (
            store.tracking.experiments,
            store.tracking.runs,
            __import__("mlflow.store.tracking.sqlalchemy_store", fromlist=["x"]),
        ):
            monkeypatch.setattr(module, "get_current_time_millis", lambda: self.now)

    def both(self, method: str, *args, **kwargs):
        """Call both stores; they must agree on success or on the error code."""
        self.now += 1
        results = []
        for target in (self.oracle, self.ours):
            try:
                results.append(("ok", getattr(target, method)(*args, **kwargs)))
            except MlflowException as exc:
                results.append(("error", exc.error_code))
        assert results[0][0] == results[1][0], (method, args, results)
        if results[0][0] == "error":
            assert results[0][1] == results[1][1], (method, args, results)
        return results[0][1], results[1][1]

    @contextmanager
    def run_id(self, rng: random.Random):
        fixed = uuid.UUID(int=rng.getrandbits(128))
        original = uuid.uuid4
        uuid.uuid4 = lambda: fixed
        try:
            yield fixed.hex
        finally:
            uuid.uuid4 = original


def build_workload(pair: Pair, rng: random.Random) -> list[str]:
    experiments = []
    for name in ("exp-a", "exp-b", "exp-c"):
        tags = [ExperimentTag("team", rng.choice(["x", "y"]))] if rng.random() < 0.7 else []
        experiments.append(pair.both("create_experiment", name, None, tags)[0])
    run_ids = []
    for _ in range(rng.randint(35, 50)):
        run_ids.append(_build_run(pair, rng, rng.choice(experiments)))
    for run_id in rng.sample(run_ids, 3):
        pair.both("log_param", run_id, Param("p0", "conflict-value"))
    pair.both("set_experiment_tag", experiments[1], ExperimentTag("note", "hello"))
    pair.both("rename_experiment", experiments[1], "exp-b-renamed")
    pair.both("delete_experiment", experiments[2])
    return experiments


def _build_run(pair: Pair, rng: random.Random, experiment_id: str) -> str:
    tags = [RunTag("t1", rng.choice(_PARAM_VALUES))] if rng.random() < 0.5 else []
    with pair.run_id(rng) as run_id:
        pair.both(
            "create_run",
            experiment_id,
            rng.choice(["alice", "bob", "Alice"]),
            rng.choice([1000, 2000, 3000]),
            tags,
            rng.choice(_RUN_NAMES),
        )
    params = [Param(k, rng.choice(_PARAM_VALUES)) for k in ("p0", "p1", "p2") if rng.random() < 0.6]
    metrics = [
        Metric(k, rng.choice(_METRIC_VALUES), rng.randint(0, 5), rng.randint(0, 3))
        for k in ("m0", "m1", "m2")
        for _ in range(rng.randint(0, 3))
    ]
    run_tags = [RunTag(k, rng.choice(_PARAM_VALUES)) for k in ("t0", "t2") if rng.random() < 0.6]
    pair.both("log_batch", run_id, metrics, params, run_tags)
    if rng.random() < 0.3:
        pair.both("log_metric", run_id, Metric("m0", rng.choice(_METRIC_VALUES), 9, 9))
    if rng.random() < 0.2:
        pair.both("set_tag", run_id, RunTag("mlflow.runName", rng.choice(_RUN_NAMES)))
    if rng.random() < 0.15 and run_tags:
        pair.both("delete_tag", run_id, run_tags[0].key)
    if rng.random() < 0.3:
        inputs = []
        for name, digest in rng.sample(_DATASETS, rng.randint(1, 2)):
            context = rng.choice(_CONTEXTS)
            input_tags = [InputTag("mlflow.data.context", context)] if context else []
            dataset = Dataset(name, digest, "local", f"file:///{name}", '{"c": 1}', None)
            inputs.append(DatasetInput(dataset, input_tags))
        pair.both("log_inputs", run_id, inputs)
    if rng.random() < 0.6:
        status = rng.choice([RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED])
        pair.both("update_run_info", run_id, status, rng.choice([None, 4000, 5000]), None)
    if rng.random() < 0.15:
        pair.both("delete_run", run_id)
        if rng.random() < 0.3:
            pair.both("restore_run", run_id)
    return run_id


# ---- generated questions ------------------------------------------------------------------


def random_filter(rng: random.Random, run_ids: list[str]) -> str:
    return " AND ".join(_random_clause(rng, run_ids) for _ in range(rng.randint(1, 3)))


def _random_clause(rng: random.Random, run_ids: list[str]) -> str:
    family = rng.choice(["metric", "metric", "param", "tag", "null", "attr", "name", "dataset"])
    if family == "metric":
        key = rng.choice(["m0", "`m1`", "m2", "m9"])
        op = rng.choice(["=", "!=", "<", "<=", ">", ">="])
        return f"metrics.{key} {op} {rng.choice(_FILTER_NUMBERS)}"
    if family in ("param", "tag"):
        prefix = "params" if family == "param" else "tags"
        key = rng.choice(["p0", "p1", "p2"] if family == "param" else ["t0", "t1", "t2"])
        op = rng.choice(["=", "!=", "LIKE", "ILIKE", "like"])
        value = rng.choice(_PATTERNS if "LIKE" in op.upper() else _PARAM_VALUES)
        return f"{prefix}.{key} {op} '{value}'"
    if family == "null":
        prefix, key = rng.choice(
            [("params", "p0"), ("params", "p2"), ("tags", "t0"), ("tag", "t2")]
        )
        return f"{prefix}.{key} {rng.choice(['IS NULL', 'IS NOT NULL'])}"
    if family == "attr":
        ids = ", ".join(f"'{i}'" for i in rng.sample(run_ids, 3))
        return rng.choice(
            [
                f"attributes.status {rng.choice(['=', '!='])} "
                f"'{rng.choice(['FINISHED', 'RUNNING', 'FAILED'])}'",
                f"attributes.user_id {rng.choice(['=', 'LIKE', 'ILIKE'])} "
                f"'{rng.choice(['alice', 'A%', 'a%'])}'",
                f"attributes.run_id IN ({ids})",
                f"run_id NOT IN ({ids})",
                f"attributes.artifact_uri LIKE '%/{rng.randint(1, 3)}/%'",
                f"attributes.start_time {rng.choice(['>', '<=', '='])} {rng.choice([1500, 2000])}",
                f"attributes.end_time {rng.choice(['>', '<=', '!='])} 4000",
                f"created >= {rng.choice([1000, 2500])}",
            ]
        )
    if family == "name":
        return rng.choice(
            [
                f"attributes.run_name = '{rng.choice(_RUN_NAMES)}'",
                f"run_name LIKE '{rng.choice(['a%', '%a', '50%', '%_x'])}'",
                "`Run name` ILIKE 'ALPHA%'",
                "attributes.run_name != 'alpha'",
                "tags.`mlflow.runName` = 'beta'",
            ]
        )
    return rng.choice(
        [
            f"datasets.name = '{rng.choice(['ds1', 'ds2', 'Train'])}'",
            "datasets.digest IN ('d1', 'x9')",
            f"datasets.context = '{rng.choice(['training', 'eval'])}'",
            "datasets.name LIKE 'd%'",
            "datasets.name != 'ds1'",
            "datasets.context NOT IN ('eval')",
        ]
    )


def random_order(rng: random.Random) -> list[str]:
    keys = rng.sample(_ORDER_KEYS, rng.randint(0, 3))
    return [f"{key}{rng.choice(['', ' ASC', ' DESC', ' desc'])}" for key in keys]


# ---- comparison ------------------------------------------------------------------------------


def sql_value(value: float):
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return MAX_DOUBLE if value > 0 else -MAX_DOUBLE
    return float(value)


def normalized_run(run) -> dict:
    info = run.info
    return {
        "info": (
            info.run_id,
            info.run_name,
            info.experiment_id,
            info.user_id,
            info.status,
            info.start_time,
            info.end_time,
            info.lifecycle_stage,
            info.artifact_uri,
        ),
        "params": run.data.params,
        "tags": run.data.tags,
        "metrics": {k: sql_value(v) for k, v in run.data.metrics.items()},
        "datasets": sorted(
            (
                d.dataset.name,
                d.dataset.digest,
                d.dataset.source,
                d.dataset.schema,
                tuple((t.key, t.value) for t in d.tags),
            )
            for d in run.inputs.dataset_inputs
        ),
    }


def search(store, experiments, filter_string, view, max_results, order_by, token=None):
    try:
        page = store.search_runs(experiments, filter_string, view, max_results, order_by, token)
    except MlflowException as exc:
        return ("error", exc.error_code), None
    return [normalized_run(r) for r in page], page.token


def walk_pages(oracle, ours, scope, filter_string, view, order_by, rng):
    size = rng.choice([1, 2, 3, 7, 50])
    tokens = (None, None)
    for _ in range(200):
        expected, oracle_token = search(
            oracle, scope, filter_string, view, size, order_by, tokens[0]
        )
        actual, our_token = search(ours, scope, filter_string, view, size, order_by, tokens[1])
        assert actual == expected, (filter_string, order_by, size)
        assert (our_token is None) == (oracle_token is None)
        if oracle_token is None:
            return
        tokens = (oracle_token, our_token)
    raise AssertionError("pages never ended")
