"""Tracking-store throughput: our DynamoDB store (on dynalite) beside MLflow's SqlAlchemyStore (on
sqlite), the same calls on the same machine, reported as ratios with DynamoDB requests per call.

    .venv/bin/python bench/store_bench.py            # 1k and 10k runs
    .venv/bin/python bench/store_bench.py --quick    # 200 and 1k runs, fewer repetitions
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow  # noqa: F401 - import MLflow fully before the store (its plugin registry)
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.stack.dynamodb_server import DynamoServer  # noqa: E402
from store.tracking import DynamoTrackingStore  # noqa: E402

SEARCH_FILTER = "metrics.m0 > 0.5 AND params.p0 = 'a'"
SEARCH_ORDER = ["metrics.m1 DESC"]


def populate(store, experiment_id: str, runs: int, rng: random.Random) -> list[str]:
    """`runs` runs with 5 metrics, 3 params and 2 tags each: through our store's API (8
    threads), and as one bulk insert for the SQL store (its API would take an hour at 10k)."""
    rows = [
        (
            [Metric(f"m{k}", rng.random(), 1, 0) for k in range(5)],
            [Param(f"p{k}", rng.choice("abc")) for k in range(3)],
            [RunTag("t", "v"), RunTag("mlflow.runName", f"run-{i}")],
        )
        for i in range(runs)
    ]
    if isinstance(store, SqlAlchemyStore):
        return _bulk_insert(store, experiment_id, rows)

    def create(index: int) -> str:
        metrics, params, tags = rows[index]
        run_id = store.create_run(experiment_id, "bench", index, [], f"run-{index}").info.run_id
        store.log_batch(run_id, metrics, params, tags[:1])
        return run_id

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(create, range(runs)))


def _bulk_insert(store: SqlAlchemyStore, experiment_id: str, rows) -> list[str]:
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )

    run_ids, objects = [], []
    for index, (metrics, params, tags) in enumerate(rows):
        run_id = uuid.uuid4().hex
        run_ids.append(run_id)
        objects.append(
            SqlRun(
                run_uuid=run_id, name=f"run-{index}", experiment_id=int(experiment_id),
                user_id="bench", status="RUNNING", start_time=index, lifecycle_stage="active",
                artifact_uri=f"/tmp/{run_id}", source_type="LOCAL",
            )
        )  # fmt: skip
        for metric in metrics:
            fields = {"key": metric.key, "value": metric.value, "timestamp": metric.timestamp}
            objects.append(SqlMetric(run_uuid=run_id, step=0, is_nan=False, **fields))
            objects.append(SqlLatestMetric(run_uuid=run_id, step=0, is_nan=False, **fields))
        objects += [SqlParam(run_uuid=run_id, key=p.key, value=p.value) for p in params]
        objects += [SqlTag(run_uuid=run_id, key=t.key, value=t.value) for t in tags]
    with store.ManagedSessionMaker(read_only=False) as session:
        session.add_all(objects)
    return run_ids


def timed(call, repetitions: int) -> float:
    """Median wall time of `call()` in milliseconds."""
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def requests_per_call(store, call) -> int | None:
    if not isinstance(store, DynamoTrackingStore):
        return None
    store.table.round_trips.reset()
    call()
    return store.table.round_trips.total()


def measure(store, runs: int, repetitions: int) -> dict[str, tuple[float, int | None]]:
    rng = random.Random(runs)
    experiment_id = store.create_experiment(f"bench-{uuid.uuid4().hex[:8]}")
    run_ids = populate(store, experiment_id, runs, rng)
    target = run_ids[0]
    step = iter(range(10**9))

    def log_batch(size: int):
        def call():
            n = next(step)
            metrics = [Metric(f"k{i % 50}", float(i), n, n * size + i) for i in range(size)]
            store.log_batch(target, metrics, [], [])

        return call

    def search():
        store.search_runs([experiment_id], SEARCH_FILTER, ViewType.ACTIVE_ONLY, 100, SEARCH_ORDER)

    results = {}
    for size in (10, 1000):
        call = log_batch(size)
        results[f"log_batch {size} metrics"] = (
            timed(call, repetitions),
            requests_per_call(store, call),
        )
    results["search_runs filter+order, first 100"] = (
        timed(search, max(3, repetitions // 4)),
        requests_per_call(store, search),
    )
    results["get_run"] = (
        timed(lambda: store.get_run(target), repetitions),
        requests_per_call(store, lambda: store.get_run(target)),
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 and 1k runs, fewer repetitions")
    args = parser.parse_args(argv)
    sizes, repetitions = ((200, 1000), 8) if args.quick else ((1000, 10000), 20)
    workdir = Path(tempfile.mkdtemp(prefix="store-bench-"))
    rows = []
    with DynamoServer(None, log_path=workdir / "dynalite.log", allow_moto=False) as server:
        host_port = server.url.removeprefix("http://")
        for runs in sizes:
            ours = DynamoTrackingStore(f"dynamodb://{host_port}/bench{runs}", str(workdir / "a"))
            oracle = SqlAlchemyStore(f"sqlite:///{workdir}/bench{runs}.db", str(workdir / "a"))
            print(f"measuring {runs} runs ...", file=sys.stderr, flush=True)
            mine, theirs = measure(ours, runs, repetitions), measure(oracle, runs, repetitions)
            for name, (ms, requests) in mine.items():
                rows.append((name, runs, ms, theirs[name][0], requests))
            oracle.engine.dispose()
    print(
        f"{'call':44} {'runs':>6} {'dynamo ms':>10} {'sqlite ms':>10} {'ratio':>6} {'requests':>9}"
    )
    for name, runs, ms, sql_ms, requests in rows:
        shown = "" if requests is None else str(requests)
        print(f"{name:44} {runs:>6} {ms:>10.2f} {sql_ms:>10.2f} {ms / sql_ms:>6.2f} {shown:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
