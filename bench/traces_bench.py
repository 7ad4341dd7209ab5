"""Trace calls on the DynamoDB store (dynalite) beside MLflow's SQL store (sqlite).

    .venv/bin/python bench/traces_bench.py [--traces 200] [--spans 5] [--repeat 50]

Prints one Markdown row per call: median and p90 latency of each store, the ratio
(DynamoDB / sqlite) and the DynamoDB requests each call made. Both stores run in this process;
dynalite runs in memory on a loopback port and is stopped at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from mlflow.entities.trace_state import TraceState
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from side_by_side import Measurement, markdown_table, timed

from gateway.stack.dynamodb_server import DynamoServer
from store.tracking import DynamoTrackingStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "store"))
from test_traces_support import span, trace_info  # noqa: E402 - shared builders


def new_trace(store, experiment_id: str, trace_id: str, n: int, spans: int) -> None:
    """What the MLflow client sends for one traced call: spans (OTLP), then the trace info."""
    start = (1_700_000_000_000 + n) * 1_000_000
    store.log_spans(
        experiment_id,
        [
            span(
                trace_id,
                s + 1,
                parent=None if s == 0 else 1,
                name="root" if s == 0 else f"step-{s}",
                span_type="CHAIN" if s == 0 else "LLM",
                start_ns=start + s,
                end_ns=start + 1_000_000,
                attributes={"mlflow.spanInputs": {"question": f"q{n}"}},
            )
            for s in range(spans)
        ],
    )
    store.start_trace(
        trace_info(
            trace_id,
            experiment_id,
            request_time=1_700_000_000_000 + n,
            state=TraceState.OK if n % 5 else TraceState.ERROR,
            tags={"mlflow.traceName": "predict", "team": f"t{n % 4}"},
        )
    )


def measure(ours, sqlite, args) -> list[Measurement]:
    experiments = (ours.create_experiment("bench"), sqlite.create_experiment("bench"))
    ids = [f"tr-{uuid.uuid4().hex}" for _ in range(args.traces)]
    for n, trace_id in enumerate(ids):
        for store, experiment_id in zip((ours, sqlite), experiments, strict=True):
            new_trace(store, experiment_id, trace_id, n, args.spans)
    probe = ids[len(ids) // 2]
    calls: dict[str, Callable[[object, str], object]] = {
        "start_trace + log_spans (one traced call)": lambda s, e: new_trace(
            s, e, f"tr-{uuid.uuid4().hex}", args.traces, args.spans
        ),
        "get_trace_info": lambda s, e: s.get_trace_info(probe),
        "get_trace (with spans)": lambda s, e: s.get_trace(probe),
        "batch_get_traces (10)": lambda s, e: s.batch_get_traces(ids[:10]),
        "search_traces (first page of 100)": lambda s, e: s.search_traces(locations=[e]),
        "search_traces tag filter": lambda s, e: s.search_traces(
            locations=[e], filter_string="tags.team = 't1' AND status = 'OK'", max_results=50
        ),
        "search_traces span.name filter": lambda s, e: s.search_traces(
            locations=[e], filter_string="span.name = 'step-2'", max_results=50
        ),
        "set_trace_tag": lambda s, e: s.set_trace_tag(probe, "reviewed", "yes"),
    }
    results = []
    for name, call in calls.items():
        repeat = max(args.repeat // 5, 3) if name.startswith("search") else args.repeat
        ours.table.round_trips.reset()
        ours_ms = timed(lambda c=call: c(ours, experiments[0]), repeat)
        trips = ours.table.round_trips.total() / repeat
        sqlite_ms = timed(lambda c=call: c(sqlite, experiments[1]), repeat)
        results.append(Measurement(name, ours_ms, sqlite_ms, trips))
    return results


def render(results: list[Measurement], args) -> str:
    title = f"traces={args.traces} spans/trace={args.spans} repeat={args.repeat}"
    return markdown_table(title, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=200)
    parser.add_argument("--spans", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        DynamoServer(None, log_path=Path(tmp) / "dynalite.log", allow_moto=False) as server,
    ):
        host_port = server.url.removeprefix("http://")
        ours = DynamoTrackingStore(f"dynamodb://{host_port}/bench{uuid.uuid4().hex[:8]}", tmp)
        sqlite = SqlAlchemyStore(f"sqlite:///{tmp}/mlflow.db", tmp)
        print(render(measure(ours, sqlite, args), args))
        sqlite.engine.dispose()


if __name__ == "__main__":
    main()
