"""The whole Cedarflow stack beside a plain MLflow server, call by call, over HTTP.

Starts `cedarflow up` (dynalite + handler tier + gateway with Cedar authorization, the dev
identity provider) and `mlflow server --backend-store-uri sqlite:///TMP/mlflow.db`, both on
127.0.0.1, and calls both with the same httpx client code (a bearer token for ours). For each
call, interleaved rounds (the order alternates every round, so machine noise hits both) give
p50 / p99 latency of sequential calls; then a burst of concurrent clients gives throughput.
Prints one Markdown table with the ratios ours / plain (latency: lower is better for us;
throughput: higher is better for us).

    .venv/bin/python bench/overhead_bench.py [--rounds 30] [--per-round 10] [--clients 4]
        [--plain-workers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gateway.devidp.provider import DevIdentityProvider  # noqa: E402

API = "/api/2.0/mlflow"
USER, GROUPS = "bench", ("benchers",)
START_TIMEOUT = 240.0
BURST_CALLS = 25  # per client


@dataclass(frozen=True)
class Server:
    """One server under test: where it answers and the headers its callers send."""

    label: str
    url: str
    headers: dict

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=60, trust_env=False)


@dataclass(frozen=True)
class Fixture:
    """What the calls of one server refer to."""

    experiment_id: str
    run_id: str
    model: str


Call = Callable[[httpx.Client, Fixture, int], httpx.Response]


def _calls() -> dict[str, Call]:
    def metric(c, f, i):
        body = {"run_id": f.run_id, "key": "loss", "value": i * 0.5, "timestamp": i, "step": i}
        return c.post(f"{API}/runs/log-metric", json=body)

    def batch(c, f, i):
        metrics = [
            {"key": f"m{k}", "value": i + k * 0.1, "timestamp": i, "step": i} for k in range(10)
        ]
        return c.post(f"{API}/runs/log-batch", json={"run_id": f.run_id, "metrics": metrics})

    return {
        "LogMetric": metric,
        "LogBatch (10 metrics)": batch,
        "LogParam": lambda c, f, i: c.post(
            f"{API}/runs/log-parameter", json={"run_id": f.run_id, "key": f"p{i}", "value": "v"}
        ),
        "SetTag": lambda c, f, i: c.post(
            f"{API}/runs/set-tag", json={"run_id": f.run_id, "key": "t", "value": str(i)}
        ),
        "CreateRun": lambda c, f, i: c.post(
            f"{API}/runs/create", json={"experiment_id": f.experiment_id, "start_time": i}
        ),
        "GetRun": lambda c, f, i: c.get(f"{API}/runs/get", params={"run_id": f.run_id}),
        "SearchRuns": lambda c, f, i: c.post(
            f"{API}/runs/search", json={"experiment_ids": [f.experiment_id], "max_results": 100}
        ),
        "SearchExperiments": lambda c, f, i: c.post(
            f"{API}/experiments/search", json={"max_results": 100}
        ),
        "GetExperiment": lambda c, f, i: c.get(
            f"{API}/experiments/get", params={"experiment_id": f.experiment_id}
        ),
        "GetRegisteredModel": lambda c, f, i: c.get(
            f"{API}/registered-models/get", params={"name": f.model}
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--plain-workers", type=int, default=4, help="MLflow's default is 4")
    parser.add_argument("--only", action="append", help="measure only these calls")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="overhead-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        ours = _start_ours(root, procs)
        plain = _start_plain(root, procs, args.plain_workers)
        print(_run([ours, plain], args))
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _spawn(command: list[str], log: Path, procs: list, **kw) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, **kw
        )
    procs.append(proc)
    return proc


def _start_ours(root: Path, procs: list) -> Server:
    data = root / "cedarflow"
    script = Path(sys.executable).parent / "cedarflow"
    proc = _spawn(
        [str(script), "up", "--data-dir", str(data), "--port", "0"], root / "ours.log", procs
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"cedarflow up exited: {(root / 'ours.log').read_text()[-2000:]}")
        try:
            info = json.loads((data / "stack.json").read_text())
            if info.get("pid") == proc.pid:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    else:
        raise SystemExit("cedarflow up did not become ready")
    token = DevIdentityProvider(data / "devidp", info["issuer"]).mint(USER, GROUPS)
    return Server("ours", info["url"], {"Authorization": f"Bearer {token}"})


def _start_plain(root: Path, procs: list, workers: int) -> Server:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mlflow = Path(sys.executable).parent / "mlflow"
    command = [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
               "--default-artifact-root", str(root / "plain-artifacts"), "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers)]  # fmt: skip
    proc = _spawn(command, root / "plain.log", procs)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mlflow server exited: {(root / 'plain.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return Server("plain", url, {})
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("mlflow server did not answer /health")


def _setup(client: httpx.Client) -> Fixture:
    experiment_id = _ok(client.post(f"{API}/experiments/create", json={"name": "bench"}))[
        "experiment_id"
    ]
    run = _ok(client.post(f"{API}/runs/create", json={"experiment_id": experiment_id}))
    _ok(client.post(f"{API}/registered-models/create", json={"name": "bench-model"}))
    for _ in range(20):  # a page of runs to search
        _ok(client.post(f"{API}/runs/create", json={"experiment_id": experiment_id}))
    return Fixture(experiment_id, run["run"]["info"]["run_id"], "bench-model")


def _ok(response: httpx.Response) -> dict:
    if response.status_code != 200:
        raise SystemExit(f"{response.request.method} {response.request.url}: {response.text}")
    return response.json()


def _run(servers: list[Server], args) -> str:
    clients = {s.label: s.client() for s in servers}
    fixtures = {s.label: _setup(clients[s.label]) for s in servers}
    calls = {k: v for k, v in _calls().items() if not args.only or k in args.only}
    counter = count(1000)
    rows = []
    for name, call in calls.items():
        for s in servers:  # warm both: connections, caches, imports
            for _ in range(10):
                _ok(call(clients[s.label], fixtures[s.label], next(counter)))
        samples: dict[str, list[float]] = {s.label: [] for s in servers}
        for r in range(args.rounds):
            for s in servers if r % 2 == 0 else servers[::-1]:
                client, fixture = clients[s.label], fixtures[s.label]
                for _ in range(args.per_round):
                    i = next(counter)
                    start = time.perf_counter()
                    _ok(call(client, fixture, i))
                    samples[s.label].append(time.perf_counter() - start)
        rates: dict[str, list[float]] = {s.label: [] for s in servers}
        for r in range(2):  # two bursts each, alternating
            for s in servers if r % 2 == 0 else servers[::-1]:
                rates[s.label].append(_burst(s, fixtures[s.label], call, counter, args.clients))
        rows.append((name, samples, {k: max(v) for k, v in rates.items()}))
    return _table(rows, args)


def _burst(server: Server, fixture: Fixture, call: Call, counter, clients: int) -> float:
    def worker(_):
        with server.client() as client:
            _ok(call(client, fixture, next(counter)))  # connect before the clock starts
            start = time.perf_counter()
            for _ in range(BURST_CALLS):
                _ok(call(client, fixture, next(counter)))
            return start, time.perf_counter()

    with ThreadPoolExecutor(clients) as pool:
        spans = list(pool.map(worker, range(clients)))
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    return clients * BURST_CALLS / elapsed


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def _table(rows, args) -> str:
    lines = [
        f"{args.rounds} interleaved rounds × {args.per_round} sequential calls per server; "
        f"throughput: {args.clients} concurrent clients × {BURST_CALLS} calls, best of 2; "
        f"plain MLflow with {args.plain_workers} workers",
        "",
        "| call | ours p50 ms | plain p50 ms | p50 ratio | ours p99 ms | plain p99 ms "
        "| p99 ratio | ours calls/s | plain calls/s | throughput ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for name, samples, rates in rows:
        o50, p50 = (
            statistics.median(samples["ours"]) * 1000,
            statistics.median(samples["plain"]) * 1000,
        )
        o99, p99 = _p(samples["ours"], 0.99), _p(samples["plain"], 0.99)
        ratios.append(o50 / p50)
        lines.append(
            f"| {name} | {o50:.2f} | {p50:.2f} | {o50 / p50:.2f}× | {o99:.2f} | {p99:.2f} "
            f"| {o99 / p99:.2f}× | {rates['ours']:.0f} | {rates['plain']:.0f} "
            f"| {rates['ours'] / rates['plain']:.2f}× |"
        )
    lines += ["", f"median p50 ratio over all calls: {statistics.median(ratios):.2f}×"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
