"""MLflow REST calls through the handler tier: our DynamoDB store beside MLflow's sqlite store.

Starts dynalite and two handler tiers (`uvicorn store.handler.app:app`, the same environment but
for the store URI): one on `dynamodb://127.0.0.1:PORT/benchtable`, one on `sqlite:///TMP/mlflow.db`.
Both are called over HTTP with the signed identity header, interleaved (the order alternates on
every repetition so that machine noise hits both), and reported side by side:
- median and p99 latency of sequential calls, and their ratios dynamo/sqlite (lower: dynamo faster);
- calls per second of a short burst of concurrent clients, and its ratio (higher: dynamo faster);
- DynamoDB requests per call, counted by running the same store call (the one MLflow's handler
  makes) on the same table in this process.

Runs are seeded through the REST API (runs/create + runs/log-batch, 8 threads) up to 2000 runs,
and above that straight through each store's Python API (ours; a bulk insert for sqlite).

    .venv/bin/python bench/handler_bench.py            # 1k and 10k runs
    .venv/bin/python bench/handler_bench.py --quick    # 1k runs, fewer repetitions
    .venv/bin/python bench/handler_bench.py --runs 5000
"""

from __future__ import annotations

import argparse
import itertools
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import mlflow  # noqa: E402, F401 - import MLflow fully before the store (its plugin registry)
from mlflow.entities import Metric, ViewType  # noqa: E402
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore  # noqa: E402

from bench.store_bench import populate  # noqa: E402
from gateway.stack.dynamodb_server import DynamoServer  # noqa: E402
from gateway.stack.handler_tier import HandlerTier, HandlerTierSettings  # noqa: E402
from store.handler.identity import IDENTITY_HEADER, Principal, sign_identity  # noqa: E402
from store.tracking import DynamoTrackingStore  # noqa: E402

API = "/api/2.0/mlflow"
SEARCH_FILTER = "metrics.m0 > 0.5 AND params.p0 = 'a'"
SEARCH_ORDER = ["metrics.m1 DESC"]
HISTORY_POINTS = 1000
REST_SEED_LIMIT = 2000  # above this many runs, seed through the stores' Python API
SEED_THREADS = 8
BURST_THREADS = 4
BURST_SECONDS = 3.0  # target length of one tier's burst, from the measured median
PRINCIPAL = Principal(subject="bench", username="bench")
TAG = {"key": "t", "value": "v"}


class Signed(httpx.Client):
    """A client of the handler tier that signs a fresh identity header for every request."""

    def __init__(self, base_url: str, secret: bytes) -> None:
        super().__init__(base_url=base_url, timeout=300, trust_env=False)
        self.secret = secret

    def send(self, request: httpx.Request, **kwargs) -> httpx.Response:
        query = request.url.query.decode("latin-1")
        request.headers[IDENTITY_HEADER] = sign_identity(
            PRINCIPAL, request.method, request.url.path, self.secret, query=query
        )
        return super().send(request, **kwargs)


@dataclass
class Tier:
    """One handler tier under test and what was created in it."""

    label: str
    store_uri: str
    url: str
    secret: bytes
    client: Signed
    experiments: dict[int, str] = field(default_factory=dict)  # runs -> search experiment id
    target_run: str = ""  # log-batch and runs/get
    history_run: str = ""  # metrics/get-history
    burst_runs: list[str] = field(default_factory=list)  # one per concurrent client
    steps: itertools.count = field(default_factory=itertools.count)

    def call(self, method: str, path: str, client: httpx.Client | None = None, **kw) -> dict:
        response = (client or self.client).request(method, f"{API}/{path}", **kw)
        if response.status_code != 200:
            raise RuntimeError(f"{self.label} {method} {path}: {response.text[:300]}")
        return response.json()


@dataclass(frozen=True)
class Row:
    call: str
    runs: int
    dynamo: list[float]
    sqlite: list[float]
    dynamo_rps: float
    sqlite_rps: float
    burst_errors: int
    requests: dict[str, int]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k runs only, fewer repetitions")
    parser.add_argument("--runs", type=int, help="one experiment of this many runs")
    args = parser.parse_args(argv)
    sizes = [args.runs] if args.runs else [1000] if args.quick else [1000, 10000]
    repetitions = 15 if args.quick else 50
    root = Path(tempfile.mkdtemp(prefix="handler-bench-"))
    tiers: list[HandlerTier] = []
    clients: list[Signed] = []
    ok = False
    try:
        with DynamoServer(None, log_path=root / "dynalite.log", allow_moto=False) as dynamo:
            uris = {
                "dynamo": f"dynamodb://{dynamo.url.removeprefix('http://')}/benchtable",
                "sqlite": f"sqlite:///{root}/mlflow.db",
            }
            secret = secrets.token_hex(32)
            for label, uri in uris.items():
                tiers.append(HandlerTier(HandlerTierSettings(
                    uri, root / f"artifacts-{label}", secret, secrets.token_hex(32),
                    root / f"handler-{label}.log",
                )))  # fmt: skip
            print("starting dynalite and two handler tiers ...", file=sys.stderr, flush=True)
            # From this thread: the children get PDEATHSIG when the thread that spawned them ends.
            urls = [tier.start() for tier in tiers]
            pair = []
            for (label, uri), url in zip(uris.items(), urls, strict=True):
                clients.append(Signed(url, bytes.fromhex(secret)))
                pair.append(Tier(label, uri, url, bytes.fromhex(secret), clients[-1]))
            rows, seeding = run_all(pair, sizes, repetitions, root)
            report(rows, seeding, repetitions)
        ok = True
    finally:
        for client in clients:
            client.close()
        for tier in tiers:
            tier.stop()
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"failed: the servers' logs are in {root}", file=sys.stderr)
    return 0


def run_all(pair: list[Tier], sizes: list[int], repetitions: int, root: Path):
    counter = DynamoTrackingStore(pair[0].store_uri, str(root / "artifacts-dynamo"))
    for tier in pair:
        prepare(tier)
    rows, seeding = [], {}
    for index, runs in enumerate(sizes):
        for tier in pair:
            print(f"seeding {runs} runs into {tier.label} ...", file=sys.stderr, flush=True)
            start = time.perf_counter()
            seeding[(tier.label, runs)] = seed(tier, runs, root)
            seconds = time.perf_counter() - start
            print(f"  {seeding[(tier.label, runs)]}: {seconds:.0f} s", file=sys.stderr)
        calls = search_calls(pair, runs)
        if index == 0:  # calls whose cost does not depend on the experiment's size
            calls = point_calls(pair) + calls
        for name, make, reps, count in calls:
            print(f"measuring {name} ({runs} runs) ...", file=sys.stderr, flush=True)
            rows.append(measure(name, runs, pair, make, reps(repetitions), count, counter))
    return rows, seeding


def prepare(tier: Tier) -> None:
    """An experiment with the runs the point calls use: log-batch target, history, burst runs."""
    experiment_id = tier.call("POST", "experiments/create", json={"name": "calls"})["experiment_id"]

    def new_run(name: str) -> str:
        body = {"experiment_id": experiment_id, "start_time": 0, "run_name": name}
        return tier.call("POST", "runs/create", json=body)["run"]["info"]["run_id"]

    tier.target_run = new_run("target")
    tier.history_run = new_run("history")
    tier.burst_runs = [new_run(f"burst-{i}") for i in range(BURST_THREADS)]
    history = [
        {"key": "h", "value": float(i), "timestamp": i, "step": i} for i in range(HISTORY_POINTS)
    ]
    tier.call("POST", "runs/log-batch", json={"run_id": tier.history_run, "metrics": history})


def seed(tier: Tier, runs: int, root: Path) -> str:
    """`runs` runs with 5 metrics, 3 params and 2 tags each (the same values in both tiers)."""
    body = {"name": f"search-{runs}"}
    experiment_id = tier.call("POST", "experiments/create", json=body)["experiment_id"]
    tier.experiments[runs] = experiment_id
    if runs > REST_SEED_LIMIT:
        return seed_through_api(tier, experiment_id, runs, root)
    rng = random.Random(runs)
    rows = [
        (
            [{"key": f"m{k}", "value": rng.random(), "timestamp": 0, "step": 1} for k in range(5)],
            [{"key": f"p{k}", "value": rng.choice("abc")} for k in range(3)],
        )
        for _ in range(runs)
    ]

    def create(index: int) -> None:
        body = {"experiment_id": experiment_id, "start_time": index, "run_name": f"run-{index}"}
        run_id = tier.call("POST", "runs/create", json=body)["run"]["info"]["run_id"]
        metrics, params = rows[index]
        batch = {"run_id": run_id, "metrics": metrics, "params": params, "tags": [TAG]}
        tier.call("POST", "runs/log-batch", json=batch)

    with ThreadPoolExecutor(SEED_THREADS) as pool:
        list(pool.map(create, range(runs)))
    return f"REST API ({SEED_THREADS} threads)"


def seed_through_api(tier: Tier, experiment_id: str, runs: int, root: Path) -> str:
    artifacts = str(root / f"artifacts-{tier.label}")
    if tier.label == "dynamo":
        store = DynamoTrackingStore(tier.store_uri, artifacts)
        populate(store, experiment_id, runs, random.Random(runs))
        return "DynamoTrackingStore API (8 threads)"
    store = SqlAlchemyStore(tier.store_uri, artifacts)
    try:
        populate(store, experiment_id, runs, random.Random(runs))
    finally:
        store.engine.dispose()
    return "SqlAlchemyStore bulk insert"


# A call: (name, make(tier) -> callable(client), repetitions(base), count(store) -> None).
Call = tuple[str, Callable, Callable[[int], int], Callable[[DynamoTrackingStore], object]]


def point_calls(pair: list[Tier]) -> list[Call]:
    dynamo = pair[0]

    def log_batch(size: int):
        def make(tier: Tier, run_id: str | None = None):
            def call(client: httpx.Client) -> None:
                step = next(tier.steps)
                metrics = [
                    {"key": f"k{i % 50}", "value": float(i), "timestamp": step, "step": step}
                    for i in range(size)
                ]
                body = {"run_id": run_id or tier.target_run, "metrics": metrics}
                tier.call("POST", "runs/log-batch", client, json=body)

            return call

        def count(store: DynamoTrackingStore) -> None:
            metrics = [Metric(f"k{i % 50}", float(i), 10**9, 10**9) for i in range(size)]
            store.log_batch(dynamo.target_run, metrics, [], [])

        return make, count

    def get_run(tier: Tier, run_id: str | None = None):
        params = {"run_id": tier.target_run}
        return lambda client: tier.call("GET", "runs/get", client, params=params)

    def history(tier: Tier, run_id: str | None = None):
        params = {"run_id": tier.history_run, "metric_key": "h"}
        return lambda client: tier.call("GET", "metrics/get-history", client, params=params)

    small, big = log_batch(10), log_batch(1000)
    return [
        ("runs/log-batch 10 metrics", small[0], lambda r: r, small[1]),
        ("runs/log-batch 1000 metrics", big[0], lambda r: max(5, r // 3), big[1]),
        ("runs/get", get_run, lambda r: r, lambda s: s.get_run(dynamo.target_run)),
        (
            f"metrics/get-history {HISTORY_POINTS} pts",
            history,
            lambda r: r,
            lambda s: s.get_metric_history(dynamo.history_run, "h"),
        ),
    ]


def search_calls(pair: list[Tier], runs: int) -> list[Call]:
    dynamo = pair[0]

    def filtered(tier: Tier, run_id: str | None = None):
        body = {
            "experiment_ids": [tier.experiments[runs]],
            "filter": SEARCH_FILTER,
            "order_by": SEARCH_ORDER,
            "max_results": 100,
        }
        return lambda client: tier.call("POST", "runs/search", client, json=body)

    def plain(tier: Tier, run_id: str | None = None):
        body = {"experiment_ids": [tier.experiments[runs]], "max_results": 100}
        return lambda client: tier.call("POST", "runs/search", client, json=body)

    def count_filtered(store: DynamoTrackingStore) -> None:
        experiments = [dynamo.experiments[runs]]
        store.search_runs(experiments, SEARCH_FILTER, ViewType.ACTIVE_ONLY, 100, SEARCH_ORDER)

    def count_plain(store: DynamoTrackingStore) -> None:
        store.search_runs([dynamo.experiments[runs]], "", ViewType.ACTIVE_ONLY, 100)

    reps = (lambda r: max(5, r // 3)) if runs <= REST_SEED_LIMIT else (lambda r: max(5, r // 6))
    return [
        ("runs/search first 100", plain, reps, count_plain),
        ("runs/search filter+order 100", filtered, reps, count_filtered),
    ]


def measure(name, runs, pair: list[Tier], make, repetitions: int, count, counter) -> Row:
    calls = [make(tier) for tier in pair]
    answers = []
    for tier, call in zip(pair, calls, strict=True):
        for _ in range(2):  # warm both tiers' caches and connections
            answer = call(tier.client) or {}
        answers.append({k: len(v) for k, v in answer.items() if isinstance(v, list)})
    if answers[0] != answers[1]:
        print(f"warning: {name}: the tiers answered differently: {answers}", file=sys.stderr)
    samples: list[list[float]] = [[], []]
    for rep in range(repetitions):  # interleaved; the order alternates every repetition
        for i in (0, 1) if rep % 2 == 0 else (1, 0):
            start = time.perf_counter()
            calls[i](pair[i].client)
            samples[i].append((time.perf_counter() - start) * 1000)
    slower = max(statistics.median(s) for s in samples) / 1000
    per_client = max(2, min(25, round(BURST_SECONDS / slower / BURST_THREADS)))
    order = (0, 1) if len(name) % 2 else (1, 0)  # no tier always goes first
    bursts: dict[int, tuple[float, int]] = {}
    for i in order:
        bursts[i] = burst(pair[i], make, per_client)
    counter.table.round_trips.reset()
    count(counter)
    requests = counter.table.round_trips.by_operation()
    return Row(name, runs, samples[0], samples[1], bursts[0][0], bursts[1][0],
               bursts[0][1] + bursts[1][1], requests)  # fmt: skip


def burst(tier: Tier, make, per_client: int) -> tuple[float, int]:
    """Calls per second of BURST_THREADS clients making `per_client` calls each; and failures."""

    def worker(index: int) -> int:
        failures = 0
        call = make(tier, tier.burst_runs[index])
        with Signed(tier.url, tier.secret) as client:
            for _ in range(per_client):
                try:
                    call(client)
                except RuntimeError:
                    failures += 1
        return failures

    start = time.perf_counter()
    with ThreadPoolExecutor(BURST_THREADS) as pool:
        failures = sum(pool.map(worker, range(BURST_THREADS)))
    elapsed = time.perf_counter() - start
    return (BURST_THREADS * per_client - failures) / elapsed, failures


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


SHORT = {"GetItem": "Get", "PutItem": "Put", "BatchWriteItem": "BatchWrite",
         "BatchGetItem": "BatchGet", "Query": "Query", "UpdateItem": "Update"}  # fmt: skip


def report(rows: list[Row], seeding: dict, repetitions: int) -> None:
    print(f"seeding: {'; '.join(f'{k[0]} {k[1]} runs: {v}' for k, v in seeding.items())}")
    print(
        f"latency: sequential, interleaved, {repetitions} repetitions (heavy calls fewer); "
        f"burst: {BURST_THREADS} concurrent clients; ratios are dynamo/sqlite"
    )
    print(
        f"{'call':32}{'runs':>6}{'n':>4}{'dyn p50':>9}{'sql p50':>9}{'ratio':>7}{'dyn p99':>9}"
        f"{'sql p99':>9}{'ratio':>7}{'dyn/s':>8}{'sql/s':>8}{'ratio':>7}  DynamoDB requests"
    )
    for row in rows:
        d50, s50 = statistics.median(row.dynamo), statistics.median(row.sqlite)
        d99, s99 = p99(row.dynamo), p99(row.sqlite)
        requests = " + ".join(f"{n} {SHORT.get(op, op)}" for op, n in row.requests.items())
        errors = f" ({row.burst_errors} burst errors)" if row.burst_errors else ""
        print(
            f"{row.call:32}{row.runs:>6}{len(row.dynamo):>4}{d50:>9.1f}{s50:>9.1f}"
            f"{d50 / s50:>7.2f}{d99:>9.1f}{s99:>9.1f}{d99 / s99:>7.2f}{row.dynamo_rps:>8.1f}"
            f"{row.sqlite_rps:>8.1f}{row.dynamo_rps / row.sqlite_rps:>7.2f}  "
            f"{sum(row.requests.values())} = {requests}{errors}"
        )


if __name__ == "__main__":
    sys.exit(main())
