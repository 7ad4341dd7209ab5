"""Searches of one experiment of 10k or 100k runs: our DynamoDB store beside MLflow's SQL store.

Both stores run in this process: ours on dynalite, MLflow's SqlAlchemyStore on a sqlite file.
Both get the same generated runs (bench/scale_runs.py: 3 params, 3 tags with the run name, 3
metrics; a `team` tag with a rare value on a few runs, one run in ten FINISHED) and one run with
a 100k-point metric history. Ours gets, by default, the items its API would leave, written in
bulk with BatchWriteItem (`--load api`: through create_run, log_batch and update_run_info, 8
threads); the history goes through log_batch in chunks of 1000 either way. The SQL store gets the
same rows as one bulk insert of MLflow's own models. For each search the table gives the median
ms of both stores, the ratio, and the read units and requests of ours (counted with
ReturnConsumedCapacity).

A sqlite search still running after `--sql-limit` seconds (default 300) is stopped (sqlite's
progress handler) and reported as "over N (stopped)", N in ms like the other times.

`--data DIR` keeps dynalite's data, the sqlite file and what was loaded in DIR: a later run with
the same DIR and --runs searches them again without loading.

    .venv/bin/python bench/search_scale_bench.py --runs 10000
    .venv/bin/python bench/search_scale_bench.py --runs 100000 --repeat 3 --data /tmp/scale100k
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import mlflow  # noqa: E402, F401 - import MLflow fully before the store (its plugin registry)
from mlflow.entities import ViewType  # noqa: E402
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore  # noqa: E402
from sqlalchemy import event  # noqa: E402

from bench.scale_runs import (  # noqa: E402
    GeneratedRun,
    generate,
    load_api,
    load_bulk,
    load_history,
)
from gateway.stack.dynamodb_server import DynamoServer  # noqa: E402
from store.dynamo.capacity import CapacityMeter  # noqa: E402
from store.tracking import DynamoTrackingStore  # noqa: E402

HISTORY = 100_000
PAGE = 100
STATE = "load.json"  # in --data DIR: what was loaded there
SLOW_MS = 60_000  # a search slower than this the first time is timed by that call alone


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
        "tags.team = 'rare'": ("tags.team = 'rare'", None, PAGE),
        "params.model = 'a'": ("params.model = 'a'", None, PAGE),
        "attributes.status = 'FINISHED'": ("attributes.status = 'FINISHED'", None, PAGE),
        f"attributes.run_name = '{middle}'": (f"attributes.run_name = '{middle}'", None, PAGE),
        "attributes.run_name LIKE 'zz%'": ("attributes.run_name LIKE 'zz%'", None, PAGE),
        "metrics.acc > 0.99": ("metrics.acc > 0.99", None, PAGE),
        "ORDER BY metrics.x DESC": ("", ["metrics.x DESC"], PAGE),
    }  # fmt: skip


class SqlLimit:
    """Stops the SQL store's statements once a call has run `seconds` (sqlite calls the progress
    handler every 10,000 steps of a statement; a true answer interrupts it)."""

    def __init__(self, store: SqlAlchemyStore, seconds: float) -> None:
        self.seconds = seconds
        self.until: float | None = None
        self.stopped = False
        event.listen(store.engine, "connect", self._install)
        store.engine.dispose()  # pooled connections come back with the handler

    def _install(self, connection, _record) -> None:
        connection.set_progress_handler(self._check, 10_000)

    def _check(self) -> bool:
        self.stopped = self.until is not None and time.monotonic() > self.until
        return self.stopped

    @contextmanager
    def applied(self) -> Iterator[None]:
        self.until, self.stopped = time.monotonic() + self.seconds, False
        quiet = logging.getLogger("mlflow.store.db.utils")  # logs the interruption as an error
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            self.until = None
            quiet.setLevel(level)

    def call(self, call: Callable[[], object]) -> object | None:
        """What `call` returns, or None when it was stopped."""
        with self.applied():
            try:
                return call()
            except Exception:
                if self.stopped:
                    return None
                raise


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
    parser.add_argument("--load", choices=("bulk", "api"), default="bulk",
                        help="how our store is loaded (api: through its calls, slow)")  # fmt: skip
    parser.add_argument("--data", type=Path, help="keep the loaded stores in DIR and reuse them")
    parser.add_argument("--sql-limit", type=float, default=300.0, metavar="SECONDS",
                        help="stop a sqlite search after this long (default 300)")  # fmt: skip
    args = parser.parse_args(argv)
    workdir = args.data or Path(tempfile.mkdtemp(prefix="search-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    state = read_state(workdir, args.runs)
    data_path = workdir / "dynamodb" if args.data else None
    with DynamoServer(data_path, log_path=workdir / "dynalite.log", allow_moto=False) as server:
        ours = DynamoTrackingStore(
            f"dynamodb://{server.url.removeprefix('http://')}/scale", str(workdir / "a")
        )
        sql = SqlAlchemyStore(f"sqlite:///{workdir}/scale.db", str(workdir / "b"))
        if state is None:
            state = load(ours, sql, args)
            (workdir / STATE).write_text(json.dumps(state, indent=1))
        else:
            print(f"reusing the {args.runs} runs loaded in {workdir}", file=sys.stderr)
        rows = measure(ours, sql, state, args)
        sql.engine.dispose()
    print(report(args, rows, state))
    return 0


def read_state(workdir: Path, runs: int) -> dict | None:
    """What an earlier run loaded in `workdir` (None: nothing yet)."""
    path = workdir / STATE
    if not path.exists():
        if any(workdir.iterdir()):
            raise SystemExit(f"{workdir} holds an unfinished load: remove it or use another DIR")
        return None
    state = json.loads(path.read_text())
    if state["runs"] != runs:
        raise SystemExit(f"{workdir} holds {state['runs']} runs, not {runs}: use another DIR")
    return state


def load(ours: DynamoTrackingStore, sql: SqlAlchemyStore, args) -> dict:
    runs = generate(args.runs)
    ours_exp, sql_exp = ours.create_experiment("scale"), sql.create_experiment("scale")
    started = time.perf_counter()
    if args.load == "api":
        run_ids = load_api(ours, ours_exp, runs)
    else:
        run_ids = load_bulk(ours, ours_exp, runs)
    ours_runs = time.perf_counter() - started
    load_history(ours, run_ids[0], HISTORY)
    ours_load = time.perf_counter() - started
    started = time.perf_counter()
    sql_history = load_sql(sql, sql_exp, runs)
    sql_load = time.perf_counter() - started
    print(f"loaded {args.runs} runs + {HISTORY} points: ours {ours_load:.0f} s "
          f"({ours_runs:.0f} s the runs, {args.load}), sqlite {sql_load:.0f} s",
          file=sys.stderr, flush=True)  # fmt: skip
    return {
        "runs": args.runs,
        "load": args.load,
        "ours": {"experiment_id": ours_exp, "history_run": run_ids[0], "seconds": ours_load,
                 "runs_seconds": ours_runs},
        "sql": {"experiment_id": sql_exp, "history_run": sql_history, "seconds": sql_load},
    }  # fmt: skip


def names(runs) -> list[str]:
    return [r.info.run_name for r in runs]


def measure(ours: DynamoTrackingStore, sql: SqlAlchemyStore, state: dict, args) -> list:
    limit = SqlLimit(sql, args.sql_limit)
    ours_exp, sql_exp = state["ours"]["experiment_id"], state["sql"]["experiment_id"]
    rows = []
    meter = CapacityMeter()
    ours_history, sql_history = state["ours"]["history_run"], state["sql"]["history_run"]
    history_times = {"ours": [], "sql": []}
    for _ in range(max(3, args.repeat // 2)):
        for label, store, run_id in (("ours", ours, ours_history), ("sql", sql, sql_history)):
            history_times[label].append(
                median_ms(lambda s=store, i=run_id: s.get_metric_history(i, "h"), 1)
            )
    with meter.installed():
        history_usage = meter.measure(lambda: ours.get_metric_history(ours_history, "h"))
    assert len(ours.get_metric_history(ours_history, "h")) == HISTORY
    history = (f"get_metric_history ({HISTORY} points)", HISTORY, True, history_times,
               history_usage)  # fmt: skip
    print(f"  history: {history_times}, {history_usage.read_units:g} RU", file=sys.stderr)
    for name, (filter_string, order_by, page) in searches(args.runs).items():

        def search(store, exp, f=filter_string, o=order_by, p=page):
            return store.search_runs([exp], f, ViewType.ACTIVE_ONLY, p, o)

        started = time.perf_counter()
        mine = search(ours, ours_exp)
        first = {"ours": (time.perf_counter() - started) * 1000}
        with meter.installed():
            usage = meter.measure(lambda: search(ours, ours_exp))
        print(f"  {name}: ours {first['ours']:.0f} ms, {usage.read_units:g} RU",
              file=sys.stderr, flush=True)  # fmt: skip
        started = time.perf_counter()
        theirs = limit.call(lambda: search(sql, sql_exp))
        first["sql"] = (time.perf_counter() - started) * 1000
        same = None if theirs is None else names(mine) == names(theirs)
        slow = {label for label, ms in first.items() if ms > SLOW_MS}
        times = {label: [first[label]] if label in slow else [] for label in first}
        if theirs is None:
            slow.add("sql")
            times["sql"] = []  # stopped: no time
        for r in range(args.repeat):  # interleaved
            for label, store, exp in (("ours", ours, ours_exp), ("sql", sql, sql_exp))[
                :: 1 if r % 2 == 0 else -1
            ]:
                if label not in slow:
                    times[label].append(median_ms(lambda s=store, e=exp: search(s, e), 1))
        rows.append((name, len(mine), same, times, usage))
        print(f"  {name}: ours {times['ours']} ms, sqlite {times['sql']} ms, same {same}, "
              f"{usage.read_units:g} RU", file=sys.stderr, flush=True)  # fmt: skip
    return [*rows, history]


def report(args, rows, state: dict) -> str:
    how = "store API" if state["load"] == "api" else "the store's items in bulk"
    lines = [
        f"{args.runs} runs in one experiment, page of {PAGE}, median of {args.repeat} "
        f"interleaved calls (one call when the first took over {SLOW_MS // 1000} s); "
        f"load: ours {state['ours']['seconds']:.0f} s ({how}), "
        f"sqlite {state['sql']['seconds']:.0f} s (bulk insert)",
        "",
        "| call | rows | same rows | ours ms | sqlite ms | ratio | ours read units | "
        "ours requests |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, count, same, times, usage in rows:
        ours_ms, sql_ms = _cell(times["ours"], args), f"over {args.sql_limit * 1000:.0f} (stopped)"
        ratio = ""
        if times["sql"]:  # not stopped
            sql_ms = _cell(times["sql"], args)
            ratio = f"{statistics.median(times['ours']) / statistics.median(times['sql']):.2f}×"
        compared = {True: "yes", False: "no", None: "not compared"}[same]
        lines.append(
            f"| {name} | {count} | {compared} | {ours_ms} | {sql_ms} | {ratio} "
            f"| {usage.read_units:g} | {usage.request_count} |"
        )
    return "\n".join(lines)


def _cell(times: list[float], args) -> str:
    """A median in ms, marked when it is one call's time."""
    alone = " (1 call)" if len(times) == 1 < args.repeat else ""
    return f"{statistics.median(times):.1f}{alone}"


if __name__ == "__main__":
    raise SystemExit(main())
