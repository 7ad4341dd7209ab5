"""Soak: the local stack under steady mixed load, then a check that nothing acknowledged is lost.

Starts `cedarflow up` on loopback (dynalite, the handler tier, the gateway) and N clients for D
seconds, each mixing LogBatch, GetRun, SearchRuns, artifact upload and download, and registry
reads (GetRegisteredModel, SearchRegisteredModels). Every metric, param, tag and artifact whose
call was answered 200 is recorded and looked up afterwards. Reports the count of every status,
p50/p99 latency per minute, and the gateway's and handler tier's RSS, open fds and established
connections sampled every few seconds, with whether memory stayed flat after the warm-up.

    .venv/bin/python bench/soak_bench.py [--clients 32] [--seconds 600] [--json soak.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gateway.devidp.provider import DevIdentityProvider  # noqa: E402

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
RUN_CALLS = 150  # LogBatch calls before a client moves to a new run (runs stay small)
WARMUP_SECONDS = 120
FLAT_GROWTH = 0.10  # RSS may grow this much from the end of the warm-up and still be flat


@dataclass
class Ledger:
    """What the stack acknowledged, and every answer's status and latency."""

    metrics: dict[tuple[str, str], set[int]] = field(default_factory=lambda: defaultdict(set))
    params: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    tags: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    artifacts: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> sha256, size
    statuses: Counter = field(default_factory=Counter)
    calls: list[tuple[float, str, int, float]] = field(default_factory=list)  # t, op, status, s
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, op: str, status: int, started: float, seconds: float) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.calls.append((started, op, status, seconds))


class Client(threading.Thread):
    def __init__(self, number: int, url: str, token: str, ledger: Ledger, until: float) -> None:
        super().__init__(daemon=True)
        self.number = number
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120
        )
        self.ledger = ledger
        self.until = until
        self.random = random.Random(number)
        self.experiment_id = ""
        self.run_id = ""
        self.artifact_root = ""
        self.batches = 0
        self.uploaded: list[str] = []

    def call(self, op: str, method: str, path: str, **kw) -> httpx.Response | None:
        started = time.monotonic()
        try:
            answer = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            self.ledger.answer(op, 0, started, time.monotonic() - started)
            print(f"client {self.number}: {op}: {type(exc).__name__}", file=sys.stderr)
            return None
        self.ledger.answer(op, answer.status_code, started, time.monotonic() - started)
        return answer if answer.status_code == 200 else None

    def run(self) -> None:
        answer = self.call(
            "CreateExperiment",
            "POST",
            f"{API}/experiments/create",
            json={"name": f"soak-{self.number}"},
        )
        if answer is None:
            return
        self.experiment_id = answer.json()["experiment_id"]
        self.new_run()
        ops = [self.log_batch] * 5 + [self.get_run, self.search_runs, self.registry] * 2
        ops += [self.upload, self.download]
        while time.monotonic() < self.until:
            self.random.choice(ops)()
        self.http.close()

    def new_run(self) -> None:
        body = {"experiment_id": self.experiment_id, "start_time": int(time.time() * 1000)}
        answer = self.call("CreateRun", "POST", f"{API}/runs/create", json=body)
        if answer is not None:
            info = answer.json()["run"]["info"]
            self.run_id = info["run_id"]
            self.artifact_root = info["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")
            self.batches = 0

    def log_batch(self) -> None:
        if not self.run_id or self.batches >= RUN_CALLS:
            self.new_run()
            if not self.run_id:
                return
        self.batches += 1
        step, now = self.batches, int(time.time() * 1000)
        metrics = [
            {"key": f"m{k}", "value": step * 0.5 + k, "timestamp": now, "step": step}
            for k in range(4)
        ]
        params = [{"key": f"p{step}", "value": f"v{self.number}-{step}"}]
        tags = [{"key": f"t{step}", "value": str(step)}] if step % 3 == 0 else []
        body = {"run_id": self.run_id, "metrics": metrics, "params": params, "tags": tags}
        if self.call("LogBatch", "POST", f"{API}/runs/log-batch", json=body) is None:
            return
        with self.ledger.lock:
            for metric in metrics:
                self.ledger.metrics[(self.run_id, metric["key"])].add(step)
            self.ledger.params[self.run_id].update({p["key"]: p["value"] for p in params})
            self.ledger.tags[self.run_id].update({t["key"]: t["value"] for t in tags})

    def get_run(self) -> None:
        if self.run_id:
            self.call("GetRun", "GET", f"{API}/runs/get", params={"run_id": self.run_id})

    def search_runs(self) -> None:
        body = {"experiment_ids": [self.experiment_id], "max_results": 50}
        self.call("SearchRuns", "POST", f"{API}/runs/search", json=body)

    def registry(self) -> None:
        if self.random.random() < 0.5:
            self.call(
                "GetRegisteredModel", "GET", f"{API}/registered-models/get",
                params={"name": "soak-model"},
            )  # fmt: skip
        else:
            self.call(
                "SearchRegisteredModels", "GET", f"{API}/registered-models/search",
                params={"max_results": 20},
            )  # fmt: skip

    def upload(self) -> None:
        if not self.run_id:
            return
        content = self.random.randbytes(self.random.randint(1, 64 * 1024))
        path = f"{self.artifact_root}/files/a{len(self.uploaded)}-{self.number}.bin"
        if self.call("UploadArtifact", "PUT", f"{ARTIFACTS}/{path}", content=content) is None:
            return
        self.uploaded.append(path)
        with self.ledger.lock:
            self.ledger.artifacts[path] = (hashlib.sha256(content).hexdigest(), len(content))

    def download(self) -> None:
        if self.uploaded:
            path = self.random.choice(self.uploaded)
            answer = self.call("DownloadArtifact", "GET", f"{ARTIFACTS}/{path}")
            expected = self.ledger.artifacts[path][0]
            if answer is not None and hashlib.sha256(answer.content).hexdigest() != expected:
                print(f"client {self.number}: {path} came back different", file=sys.stderr)


def process_sample(pid: int) -> dict:
    """RSS (kB), open fds and established TCP connections of one process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    inodes = set()
    fds = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        fds += 1
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    established = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            columns = line.split()
            if columns[3] == "01" and columns[9] in inodes:
                established += 1
    return {"rss_kb": rss, "fds": fds, "connections": established}


class Sampler(threading.Thread):
    def __init__(self, pids: dict[str, int], every: float) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.every = every
        self.samples: list[dict] = []
        self.done = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self.done.is_set():
            sample = {"t": round(time.monotonic() - start, 1)}
            for name, pid in self.pids.items():
                try:
                    sample[name] = process_sample(pid)
                except (OSError, StopIteration):
                    sample[name] = None
            self.samples.append(sample)
            self.done.wait(self.every)


def start_stack(root: Path) -> tuple[subprocess.Popen, dict]:
    data = root / "data"
    command = [
        str(Path(sys.executable).parent / "cedarflow"),
        "up",
        "--data-dir",
        str(data),
        "--port",
        "0",
    ]
    log = open(root / "up.log", "wb")  # noqa: SIM115 - lives as long as the stack
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"cedarflow up exited: {(root / 'up.log').read_text()[-2000:]}")
        try:
            info = json.loads((data / "stack.json").read_text())
            if info.get("pid") == proc.pid:
                return proc, info
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("cedarflow up did not start")


def verify(url: str, token: str, ledger: Ledger) -> dict:
    """Look up every acknowledged write; counts of what was found and what is missing."""
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    found: Counter = Counter()
    missing: Counter = Counter()
    for (run_id, key), steps in ledger.metrics.items():
        seen, token_ = set(), None
        while True:
            params = {"run_id": run_id, "metric_key": key, "max_results": 25000}
            if token_:
                params["page_token"] = token_
            page = http.get(f"{API}/metrics/get-history", params=params).json()
            seen |= {int(m["step"]) for m in page.get("metrics", [])}
            token_ = page.get("next_page_token")
            if not token_:
                break
        found["metrics"] += len(steps & seen)
        missing["metrics"] += len(steps - seen)
    for run_id in set(ledger.params) | set(ledger.tags):
        data = http.get(f"{API}/runs/get", params={"run_id": run_id}).json()["run"]["data"]
        params = {p["key"]: p["value"] for p in data.get("params", [])}
        tags = {t["key"]: t["value"] for t in data.get("tags", [])}
        for kind, expected, actual in (
            ("params", ledger.params[run_id], params),
            ("tags", ledger.tags[run_id], tags),
        ):
            same = sum(1 for k, v in expected.items() if actual.get(k) == v)
            found[kind] += same
            missing[kind] += len(expected) - same
    listed: dict[str, int] = {}
    for folder in {path.rsplit("/", 1)[0] for path in ledger.artifacts}:
        answer = http.get(ARTIFACTS, params={"path": folder}).json()
        for entry in answer.get("files", []):
            listed[f"{folder}/{entry['path']}"] = int(entry.get("file_size") or 0)
    for path, (_, size) in ledger.artifacts.items():
        ok = listed.get(path) == size
        found["artifacts"] += ok
        missing["artifacts"] += not ok
    http.close()
    return {"found": dict(found), "missing": dict(missing)}


def per_minute(calls: list[tuple[float, str, int, float]], start: float) -> list[dict]:
    minutes: dict[int, list[float]] = defaultdict(list)
    for started, _, _, seconds in calls:
        minutes[int((started - start) // 60)].append(seconds)
    rows = []
    for minute in sorted(minutes):
        values = sorted(minutes[minute])
        rows.append(
            {
                "minute": minute + 1,
                "calls": len(values),
                "p50_ms": round(1000 * statistics.median(values), 1),
                "p99_ms": round(1000 * values[min(len(values) - 1, int(len(values) * 0.99))], 1),
            }
        )
    return rows


def memory_verdict(samples: list[dict], name: str) -> dict:
    """RSS at the end of the warm-up against the last samples: flat when within FLAT_GROWTH."""
    points = [(s["t"], s[name]["rss_kb"]) for s in samples if s.get(name)]
    after = [rss for t, rss in points if t >= WARMUP_SECONDS]
    if len(after) < 4:
        return {"flat": None, "why": "run shorter than the warm-up"}
    quarter = max(1, len(after) // 4)
    early = statistics.median(after[:quarter])
    late = statistics.median(after[-quarter:])
    growth = (late - early) / early
    return {
        "flat": growth <= FLAT_GROWTH,
        "rss_after_warmup_kb": early,
        "rss_at_end_kb": late,
        "growth": round(growth, 3),
        "peak_kb": max(rss for _, rss in points),
    }


def resources(samples: list[dict], names: list[str]) -> dict:
    """First, last and largest of each sampled quantity, per process."""
    table = {}
    for name in names:
        present = [s[name] for s in samples if s.get(name)]
        table[name] = {
            quantity: {
                "first": present[0][quantity],
                "last": present[-1][quantity],
                "max": max(p[quantity] for p in present),
            }
            for quantity in ("rss_kb", "fds", "connections")
        }
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--sample-every", type=float, default=5.0)
    parser.add_argument("--json", type=Path, help="also write the full report here")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="soak-"))
    proc, info = start_stack(root)
    try:
        idp = DevIdentityProvider(root / "data" / "devidp", info["issuer"])
        token = idp.mint("soak", ("soakers",), ttl=args.seconds + 3600)
        url = info["url"]
        create = {"name": "soak-model"}
        headers = {"Authorization": f"Bearer {token}"}
        httpx.post(f"{url}{API}/registered-models/create", json=create, headers=headers)
        pids = {"gateway": proc.pid, "handler": info["child_pids"][1]}
        sampler = Sampler(pids, args.sample_every)
        sampler.start()
        ledger = Ledger()
        start = time.monotonic()
        clients = [Client(n, url, token, ledger, start + args.seconds) for n in range(args.clients)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        sampler.done.set()
        report = {
            "clients": args.clients,
            "seconds": args.seconds,
            "statuses": {str(k): v for k, v in sorted(ledger.statuses.items())},
            "calls": len(ledger.calls),
            "calls_by_operation": dict(Counter(op for _, op, _, _ in ledger.calls)),
            "server_errors": sum(v for k, v in ledger.statuses.items() if k >= 500 or k == 0),
            "acknowledged": {
                "metrics": sum(len(s) for s in ledger.metrics.values()),
                "params": sum(len(p) for p in ledger.params.values()),
                "tags": sum(len(t) for t in ledger.tags.values()),
                "artifacts": len(ledger.artifacts),
            },
            "verified": verify(url, token, ledger),
            "per_minute": per_minute(ledger.calls, start),
            "memory": {name: memory_verdict(sampler.samples, name) for name in pids},
            "samples": sampler.samples,
            "up_log": str(root / "up.log"),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    summary = {k: v for k, v in report.items() if k != "samples"}
    summary["resources"] = resources(report["samples"], list(pids))
    print(json.dumps(summary, indent=1))
    lost = sum(report["verified"]["missing"].values())
    return 0 if lost == 0 and report["server_errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
