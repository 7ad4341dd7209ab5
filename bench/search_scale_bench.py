"""Searches of one experiment of 10k or 100k runs: our DynamoDB store beside MLflow's SQL store.

Both stores run in this process: ours on dynalite (in memory), MLflow's SqlAlchemyStore on a
sqlite file. Both get the same generated runs (3 params, 3 tags with the run name, 3 metrics;
a `team` tag with a rare value on a few runs, one run in ten FINISHED) and one run with a
100k-point metric history. Ours is loaded through its own API (create_run with the tags, then
one log_batch per run, 8 threads; the history in log_batch chunks of 1000); the SQL store gets
the same rows as one bulk insert of MLflow's own models. For each search the table gives the
median ms of both stores, the ratio, and the read units and requests of ours (counted with
ReturnConsumedCapacity).

    .venv/bin/python bench/search_scale_bench.py --runs 10000
    .venv/bin/python bench/search_scale_bench.py --runs 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import mlflow  # noqa: E402, F401 - import MLflow fully before the store (its plugin registry)
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType  # noqa: E402
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore  # noqa: E402

from gateway.stack.dynamodb_server import DynamoServer  # noqa: E402
from store.dynamo.capacity import CapacityMeter  # noqa: E402
from store.tracking import DynamoTrackingStore  # noqa: E402

HISTORY = 100_000
RARE_EVERY = 2_500  # one run in this many has team=rare, model=a and a name starting "zz"
PAGE = 100


@dataclass(frozen=True)
class GeneratedRun:
    index: int
    name: str
    finished: bool
    params: tuple[Param, ...]
    tags: tuple[RunTag, ...]
    metrics: tuple[Metric, ...]


def generate(runs: int, seed: int = 7) -> list[GeneratedRun]:
    rng = random.Random(seed)
    made = []
    for i in range(runs):
        rare = i % RARE_EVERY == 17
        name = f"zz-{i}" if rare else f"run-{i}"
        made.append(
            GeneratedRun(
                index=i,
                name=name,
                finished=i % 10 == 0,
                params=(
                    Param("model", "a" if rare else f"m-{i % 5}"),
                    Param("lr", str(rng.choice((0.1, 0.01, 0.001)))),
                    Param("seed", str(i)),
                ),
                tags=(
                    RunTag("team", "rare" if rare else f"team-{i % 7}"),
                    RunTag("mlflow.source.name", "train.py"),
                    RunTag("mlflow.runName", name),
                ),
                metrics=(
                    Metric("acc", round(rng.uniform(0.5, 0.99), 4), 1000 + i, 0),
                    Metric("loss", rng.random(), 1000 + i, 0),
                    Metric("x", rng.random(), 1000 + i, 0),
                ),
            )
        )
    return made


def load_ours(store: DynamoTrackingStore, experiment_id: str, runs: list[GeneratedRun]) -> str:
    def one(run: GeneratedRun) -> str:
        created = store.create_run(experiment_id, "bench", 1000 + run.index, list(run.tags[:2]),
                                   run.name)  # fmt: skip
        run_id = created.info.run_id
        store.log_batch(run_id, list(run.metrics), list(run.params), [])
        if run.finished:
            store.update_run_info(run_id, RunStatus.FINISHED, 5000 + run.index, None)
        return run_id

    with ThreadPoolExecutor(8) as pool:
        run_ids = list(pool.map(one, runs))
    history_run = run_ids[0]
    chunks = [range(start, min(start + 1000, HISTORY)) for start in range(0, HISTORY, 1000)]

    def log_chunk(steps: range) -> None:
        store.log_batch(history_run, [Metric("h", s * 0.5, s, s) for s in steps], [], [])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(log_chunk, chunks))
    return history_run


def load_sql(store: SqlAlchemyStore, experiment_id: str, runs: list[GeneratedRun]) -> str:
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )

    run_ids, objects = [], []
    for run in runs:
        run_id = uuid.uuid4().hex
        run_ids.append(run_id)
        objects.append(
            SqlRun(
                run_uuid=run_id, name=run.name, experiment_id=int(experiment_id),
                user_id="bench", status="FINISHED" if run.finished else "RUNNING",
                start_time=1000 + run.index, end_time=5000 + run.index if run.finished else None,
                lifecycle_stage="active", artifact_uri=f"/tmp/{run_id}", source_type="LOCAL",
            )
        )  # fmt: skip
        for m in run.metrics:
            fields = {"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step}
            objects.append(SqlMetric(run_uuid=run_id, is_nan=False, **fields))
            objects.append(SqlLatestMetric(run_uuid=run_id, is_nan=False, **fields))
        objects += [SqlParam(run_uuid=run_id, key=p.key, value=p.value) for p in run.params]
        objects += [SqlTag(run_uuid=run_id, key=t.key, value=t.value) for t in run.tags]
    history_run = run_ids[0]
    objects += [
        SqlMetric(run_uuid=history_run, key="h", value=s * 0.5, timestamp=s, step=s, is_nan=False)
        for s in range(HISTORY)
    ]
    objects.append(
        SqlLatestMetric(run_uuid=history_run, key="h", value=(HISTORY - 1) * 0.5,
                        timestamp=HISTORY - 1, step=HISTORY - 1, is_nan=False)
    )  # fmt: skip
    with store.ManagedSessionMaker() as session:
        session.add_all(objects)
    return history_run


def searches(runs: int) -> dict[str, tuple[str, list[str] | None, int]]:
    """name → (filter, order_by, max_results)."""
    middle = f"run-{runs // 2 + 1}"
    return {
        "first page, default order": ("", None, PAGE),
        "UI experiment page (ACTIVE_ONLY, start_time DESC)": (
            "", ["attributes.start_time DESC"], PAGE),
        "ORDER BY start_time ASC": ("", ["attributes.start_time ASC"], PAGE),
        "ORDER BY metrics.x DESC": ("", ["metrics.x DESC"], PAGE),
        "tags.team = 'rare'": ("tags.team = 'rare'", None, PAGE),
        "params.model = 'a'": ("params.model = 'a'", None, PAGE),
        "attributes.status = 'FINISHED'": ("attributes.status = 'FINISHED'", None, PAGE),
        f"attributes.run_name = '{middle}'": (f"attributes.run_name = '{middle}'", None, PAGE),
        "attributes.run_name LIKE 'zz%'": ("attributes.run_name LIKE 'zz%'", None, PAGE),
        "metrics.acc > 0.99": ("metrics.acc > 0.99", None, PAGE),
    }  # fmt: skip


def median_ms(call: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="search-scale-"))
    runs = generate(args.runs)
    with DynamoServer(None, log_path=workdir / "dynalite.log", allow_moto=False) as server:
        ours = DynamoTrackingStore(
            f"dynamodb://{server.url.removeprefix('http://')}/scale", str(workdir / "a")
        )
        sql = SqlAlchemyStore(f"sqlite:///{workdir}/scale.db", str(workdir / "b"))
        ours_exp, sql_exp = ours.create_experiment("scale"), sql.create_experiment("scale")
        started = time.perf_counter()
        ours_history = load_ours(ours, ours_exp, runs)
        ours_load = time.perf_counter() - started
        started = time.perf_counter()
        sql_history = load_sql(sql, sql_exp, runs)
        sql_load = time.perf_counter() - started
        print(f"loaded {args.runs} runs + {HISTORY} points: ours {ours_load:.0f} s, "
              f"sqlite {sql_load:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
        rows = []
        meter = CapacityMeter()
        for name, (filter_string, order_by, page) in searches(args.runs).items():

            def search(store, exp, f=filter_string, o=order_by, p=page):
                return store.search_runs([exp], f, ViewType.ACTIVE_ONLY, p, o)

            mine = search(ours, ours_exp)
            theirs = search(sql, sql_exp)
            same = [r.info.run_name for r in mine] == [r.info.run_name for r in theirs]
            times = {"ours": [], "sql": []}
            for r in range(args.repeat):  # interleaved
                for label, store, exp in (("ours", ours, ours_exp), ("sql", sql, sql_exp))[
                    :: 1 if r % 2 == 0 else -1
                ]:
                    times[label].append(median_ms(lambda s=store, e=exp: search(s, e), 1))
            with meter.installed():
                usage = meter.measure(lambda: search(ours, ours_exp))
            rows.append((name, len(mine), same, times, usage))
            print(f"  {name}: done", file=sys.stderr, flush=True)
        history_times = {"ours": [], "sql": []}
        for _ in range(max(3, args.repeat // 2)):
            for label, store, run_id in (("ours", ours, ours_history), ("sql", sql, sql_history)):
                history_times[label].append(
                    median_ms(lambda s=store, i=run_id: s.get_metric_history(i, "h"), 1)
                )
        with meter.installed():
            history_usage = meter.measure(lambda: ours.get_metric_history(ours_history, "h"))
        assert len(ours.get_metric_history(ours_history, "h")) == HISTORY
        rows.append((f"get_metric_history ({HISTORY} points)", HISTORY, True, history_times,
                     history_usage))  # fmt: skip
        sql.engine.dispose()
    print(report(args, rows, ours_load, sql_load))
    return 0


def report(args, rows, ours_load: float, sql_load: float) -> str:
    lines = [
        f"{args.runs} runs in one experiment, page of {PAGE}, median of {args.repeat} "
        f"interleaved calls; load: ours {ours_load:.0f} s (store API), sqlite {sql_load:.0f} s "
        "(bulk insert)",
        "",
        "| call | rows | same rows | ours ms | sqlite ms | ratio | ours read units | "
        "ours requests |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, count, same, times, usage in rows:
        o, s = statistics.median(times["ours"]), statistics.median(times["sql"])
        lines.append(
            f"| {name} | {count} | {'yes' if same else 'no'} | {o:.1f} | {s:.1f} | {o / s:.2f}× "
            f"| {usage.read_units:g} | {usage.request_count} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
