"""DynamoDB capacity units and requests per MLflow tracking call, for small, medium and very large
runs: what each call costs on AWS, measured with `ReturnConsumedCapacity` against dynalite.

    .venv/bin/python bench/capacity_bench.py                 # 20 runs per size, 1000-point history
    .venv/bin/python bench/capacity_bench.py --runs 50 --history 10000

Starts dynalite in memory on a loopback port, drives `store.tracking.DynamoTrackingStore` through
MLflow's tracking-store API only (so the bench measures whatever item layout the store uses), and
counts every DynamoDB request with `bench/capacity.py`: read units and table write units as the
server reports them, global-secondary-index write units and failed conditional writes computed
by AWS's rules (dynalite reports neither). Prints Markdown: a comparison across run sizes, one
detailed table per size, and the limits of the store (what fails, and where).

Run sizes (every run of a size has the same shape; the measured run is the newest one):
- small: 10 params, 10 tags, 10 metrics;
- medium: ~100 KB: 200 params of 400 characters, 20 tags of 400 characters, 300 metrics;
- very large: as large as the store accepts, up to MAX_BIG_PARAMS: 6000-character params
  (MLflow's maximum) up to the last one that fits with room for the measured calls, 10 tags,
  100 metrics.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow  # noqa: F401 - import MLflow fully before the store (its plugin registry)
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException

from gateway.stack.dynamodb_server import DynamoServer
from store.dynamo.capacity import CapacityMeter, Usage
from store.tracking import DynamoTrackingStore

MAX_PARAM = 6000  # characters MLflow accepts in a param value
MAX_TAG = 8000  # characters MLflow accepts in a tag value
MAX_BIG_PARAMS = 200  # the limit search stops here (1.2 MB) on a store without an item limit
PAGE = 10  # search page size: the experiments hold more runs than one page
BATCH_KEYS = 10  # metric keys of the measured log_batch calls (a training loop's flush)
CLIENT_TAGS = [  # what the MLflow client sends with CreateRun
    RunTag("mlflow.user", "bench"),
    RunTag("mlflow.source.name", "train.py"),
    RunTag("mlflow.source.type", "LOCAL"),
    RunTag("mlflow.source.git.commit", "0" * 40),
]


@dataclass(frozen=True)
class Shape:
    """What one run of a size holds (apart from the measured run's metric history)."""

    name: str
    params: list[Param]
    tags: list[RunTag]
    metric_keys: list[str]


def small() -> Shape:
    return Shape(
        "small",
        [Param(f"p{i}", f"value-{i}") for i in range(10)],
        [RunTag(f"t{i}", f"tag-value-{i}") for i in range(10)],
        [f"m{i:03d}" for i in range(10)],
    )


def medium() -> Shape:
    return Shape(
        "medium",
        [Param(f"p{i:03d}", f"{i:03d}" + "v" * 397) for i in range(200)],
        [RunTag(f"t{i:02d}", f"{i:02d}" + "t" * 398) for i in range(20)],
        [f"m{i:03d}" for i in range(300)],
    )


def very_large(big_params: int) -> Shape:
    return Shape(
        "very large",
        [Param(f"P{i:03d}", f"{i:03d}" + "x" * (MAX_PARAM - 3)) for i in range(big_params)],
        [RunTag(f"t{i}", f"{i}" + "t" * 399) for i in range(10)],
        [f"m{i:03d}" for i in range(100)],
    )


# ---- building runs through MLflow's store API ---------------------------------------------------


def new_run(store, experiment_id: str, shape: Shape, start: int, team: str) -> str:
    run_id = store.create_run(experiment_id, "bench", start, CLIENT_TAGS, f"run-{start}")
    run_id = run_id.info.run_id
    metrics = [Metric(k, 0.5, 1, 0) for k in shape.metric_keys]
    tags = [*shape.tags, RunTag("team", team)]
    for chunk in _chunks(shape.params, 50):
        store.log_batch(run_id, [], chunk, [])
    for chunk in _chunks(metrics, 1000):
        store.log_batch(run_id, chunk, [], [])
    store.log_batch(run_id, [], [], tags)
    return run_id


def log_history(store, run_id: str, points: int) -> None:
    for start in range(0, points, 1000):
        batch = [Metric("h", float(i), i, i) for i in range(start, min(points, start + 1000))]
        store.log_batch(run_id, batch, [], [])


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# ---- the limit of one run ----------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    max_params_that_fit: int
    refusals: list[tuple[str, str]]  # (what was tried on a full run, what the store answered)


def find_limits(store, experiment_id: str) -> Limits:
    """Add maximal params to a very large run until the store refuses one (or MAX_BIG_PARAMS
    are in); then try more."""
    run_id = new_run(store, experiment_id, very_large(0), 0, "limits")
    store.log_metric(run_id, Metric("h", 0.0, 0, 0))
    fitted = 0
    refusals: list[tuple[str, str]] = []
    for i in range(MAX_BIG_PARAMS):
        try:
            store.log_param(run_id, Param(f"P{i:03d}", f"{i:03d}" + "x" * (MAX_PARAM - 3)))
        except MlflowException as exc:
            refusals.append((f"log_param #{i + 1} of {MAX_PARAM} characters", _short(exc)))
            break
        fitted += 1
    new_keys = [Metric(f"new{i}", 1.0, 1, 1) for i in range(100)]
    big_tag = "y" * MAX_TAG
    attempts: list[tuple[str, Callable[[], object]]] = [
        (f"set_tag of {MAX_TAG} characters", lambda: store.set_tag(run_id, RunTag("big", big_tag))),
        ("log_batch of 100 new metric keys", lambda: store.log_batch(run_id, new_keys, [], [])),
        ("log_param of 100 characters", lambda: store.log_param(run_id, Param("short", "s" * 100))),
        ("log_metric on an existing key", lambda: store.log_metric(run_id, Metric("h", 1.0, 1, 1))),
    ]
    for what, attempt in attempts:
        try:
            attempt()
            refusals.append((what, "accepted"))
        except MlflowException as exc:
            refusals.append((what, _short(exc)))
    return Limits(fitted, refusals)


def _short(exc: MlflowException) -> str:
    return f"{exc.error_code}: {exc.message.splitlines()[0][:110]}"


# ---- the measured calls ------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    call: str
    usage: Usage  # the median of the repetitions (units are deterministic on a quiet table)
    varied: bool  # the repetitions did not all consume the same


def measure_size(store, meter: CapacityMeter, shape: Shape, runs: int, history: int, repeat: int):
    experiment_id = store.create_experiment(f"capacity-{shape.name}")
    print(f"building {runs} {shape.name} runs ...", file=sys.stderr, flush=True)
    for start in range(runs - 1):
        new_run(store, experiment_id, shape, start, "rare" if start == 0 else "common")
    run_id = new_run(store, experiment_id, shape, runs - 1, "common")
    log_history(store, run_id, history)
    steps = itertools.count(10**6)
    new_keys = itertools.count()
    keys = shape.metric_keys[:BATCH_KEYS]
    wide = shape.metric_keys[:100]

    def retag() -> RunTag:
        first = shape.tags[0]
        return RunTag(first.key, first.value[:-4] + f"{next(new_keys):04d}")

    def batch(points: int, over: list[str]) -> Callable[[], object]:
        def call() -> None:
            first = next(steps)
            metrics = [
                Metric(over[i % len(over)], 0.25, first + i // len(over), first + i // len(over))
                for i in range(points)
            ]
            for _ in range(points // len(over)):
                next(steps)
            store.log_batch(run_id, metrics, [], [])

        return call

    def search(filter_string: str, order_by: list[str] | None) -> Callable[[], object]:
        return lambda: store.search_runs(
            [experiment_id], filter_string, ViewType.ACTIVE_ONLY, PAGE, order_by
        )

    calls: list[tuple[str, Callable[[], object]]] = [
        ("log_metric", lambda: store.log_metric(run_id, Metric(keys[0], 0.1, 1, next(steps)))),
        ("log_param (new key, 5 characters)",
         lambda: store.log_param(run_id, Param(f"new{next(new_keys)}", "value"))),
        ("set_tag (existing key, same length)", lambda: store.set_tag(run_id, retag())),
        (f"log_batch 10 metrics ({BATCH_KEYS} keys)", batch(10, keys)),
        (f"log_batch 100 metrics ({BATCH_KEYS} keys)", batch(100, keys)),
        (f"log_batch 1000 metrics ({BATCH_KEYS} keys)", batch(1000, keys)),
    ]  # fmt: skip
    if len(wide) == 100:
        calls.append(("log_batch 100 metrics (100 keys)", batch(100, wide)))
    calls += [
        ("update_run_info (status)",
         lambda: store.update_run_info(run_id, RunStatus.RUNNING, None, None)),
        ("get_run", lambda: store.get_run(run_id)),
        (f"search_runs first {PAGE} of {runs}, default order", search("", None)),
        (f"search_runs tags.team = 'rare' (1 of {runs})", search("tags.team = 'rare'", None)),
        (f"search_runs order by metrics.{keys[0]} DESC, first {PAGE}",
         search("", [f"metrics.{keys[0]} DESC"])),
        (f"get_metric_history ({history} points)", lambda: store.get_metric_history(run_id, "h")),
    ]  # fmt: skip
    results = []
    for name, call in calls:
        usages = [meter.measure(call) for _ in range(repeat)]
        results.append(_median(name, usages))
    size = next(m.usage.bytes_returned for m in results if m.call == "get_run")
    return results, size


def measure_create_run(store, meter: CapacityMeter, repeat: int) -> Measured:
    experiment_id = store.create_experiment("capacity-create")
    starts = itertools.count()
    usages = [
        meter.measure(
            lambda: store.create_run(experiment_id, "bench", next(starts), CLIENT_TAGS, "new")
        )
        for _ in range(repeat)
    ]
    return _median("create_run (client tags)", usages)


def _median(name: str, usages: list[Usage]) -> Measured:
    ordered = sorted(usages, key=lambda u: (u.total_write_units, u.read_units, u.request_count))
    middle = ordered[len(ordered) // 2]
    varied = len({(u.total_write_units, u.read_units, u.request_count) for u in usages}) > 1
    return Measured(name, middle, varied)


# ---- report -----------------------------------------------------------------------------------


def _units(value: float) -> str:
    return f"{value:g}"


def _requests(usage: Usage) -> str:
    return " + ".join(f"{n} {op}" for op, n in sorted(usage.requests.items()))


def report(by_size: dict[str, tuple[list[Measured], int]], create: Measured, limits, args) -> str:
    sizes = list(by_size)
    lines = [
        "## DynamoDB capacity per MLflow call",
        "",
        f"{args.runs} runs per size in one experiment each; metric history of {args.history} "
        f"points; median of {args.repeat} repetitions. RU = read units, WU = write units "
        "(table, as reported, + global secondary indexes and failed conditions, computed by "
        "AWS's rules). Run size = bytes `get_run` returns.",
        "",
        "| run size | " + " | ".join(f"{s}: {by_size[s][1] / 1024:.0f} KB" for s in sizes) + " |",
        "|---|" + "---|" * len(sizes),
        "",
        "| call | " + " | ".join(f"{s} RU / WU / requests" for s in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    calls = list(dict.fromkeys(m.call for s in reversed(sizes) for m in by_size[s][0]))
    for call in calls:
        cells = []
        for s in sizes:
            found = [m for m in by_size[s][0] if m.call == call]
            if not found:
                cells.append("n/a")
                continue
            u = found[0].usage
            mark = " (varied)" if found[0].varied else ""
            cells.append(
                f"{_units(u.read_units)} / {_units(u.total_write_units)} / {u.request_count}{mark}"
            )
        lines.append(f"| {call} | " + " | ".join(cells) + " |")
    u = create.usage
    lines += [
        "",
        f"`create_run` with the client's tags (any size): {_units(u.read_units)} RU, "
        f"{_units(u.total_write_units)} WU ({_units(u.write_units)} table + "
        f"{_units(u.index_write_units)} index), {_requests(u)}.",
    ]
    for s in sizes:
        results, size = by_size[s]
        lines += [
            "",
            f"### {s} run ({size / 1024:.1f} KB)",
            "",
            "| call | requests | RU | WU table | WU indexes | WU failed conditions | WU total "
            "| bytes returned |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m in results:
            u = m.usage
            lines.append(
                f"| {m.call} | {_requests(u)} | {_units(u.read_units)} | {_units(u.write_units)} "
                f"| {_units(u.index_write_units)} | {_units(u.failed_condition_units)} "
                f"| {_units(u.total_write_units)} | {u.bytes_returned} |"
            )
    lines += [
        "",
        "### Limits of one run",
        "",
        f"A run holding 10 tags of 400 characters and 100 metrics takes "
        f"{limits.max_params_that_fit} params of {MAX_PARAM} characters"
        + (" (the most this bench tries)" if limits.max_params_that_fit == MAX_BIG_PARAMS else "")
        + "; then:",
        "",
        "| tried on that full run | answer |",
        "|---|---|",
    ]
    lines += [f"| {what} | {answer} |" for what, answer in limits.refusals]
    unmetered = sorted({op for s in sizes for m in by_size[s][0] for op in m.usage.unmetered})
    if unmetered:
        lines += ["", f"Index writes not computed for: {', '.join(unmetered)}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per size (default 20)")
    parser.add_argument("--history", type=int, default=1000, help="points of the measured history")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each call")
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2")
    workdir = Path(tempfile.mkdtemp(prefix="capacity-bench-"))
    meter = CapacityMeter()
    with DynamoServer(None, log_path=workdir / "dynalite.log", allow_moto=False) as server:
        uri = f"dynamodb://{server.url.removeprefix('http://')}/capacity"
        store = DynamoTrackingStore(uri, str(workdir / "artifacts"))
        with meter.installed():
            print("finding how many maximal params one run holds ...", file=sys.stderr, flush=True)
            limits = find_limits(store, store.create_experiment("capacity-limits"))
            shapes = [small(), medium(), very_large(max(0, limits.max_params_that_fit - 1))]
            by_size = {
                shape.name: measure_size(store, meter, shape, args.runs, args.history, args.repeat)
                for shape in shapes
            }
            create = measure_create_run(store, meter, args.repeat)
    print(report(by_size, create, limits, args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
