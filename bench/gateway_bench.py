"""The gateway's cost: MLflow calls through the gateway vs straight to the handler tier.

Starts dynalite, the handler tier and the gateway (authorization on, in its own process),
creates one experiment, run and artifact, then for GetRun, LogMetric, SearchRuns and an
artifact download measures, side by side and interleaved:
- p50 / p99 latency of sequential calls through the gateway and direct (the direct path signs
  the identity header itself, as the gateway does), and their ratios;
- throughput with a few concurrent clients, and its ratio;
- the gateway's DynamoDB reads during the warm loop (from /metrics, scraped as an admin).

    .venv/bin/python bench/gateway_bench.py [--iterations 300] [--clients 4]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gateway.devidp.provider import DevIdentityProvider, subject_for  # noqa: E402
from gateway.stack.dynamodb_server import DynamoServer  # noqa: E402
from gateway.stack.handler_tier import HandlerTier, HandlerTierSettings, free_port  # noqa: E402
from store.handler.identity import IDENTITY_HEADER, Principal, sign_identity  # noqa: E402

USER, GROUPS = "bench", ("benchers",)
ADMIN, ADMIN_GROUPS = "bench-admin", ("admins",)  # /metrics is for administrators
_GATEWAY = """
import os, sys, uvicorn
from pathlib import Path
from gateway.app import create_app
from gateway.config import GatewayConfig
e = os.environ
config = GatewayConfig(
    upstream_url=e["B_UPSTREAM"], identity_secret=bytes.fromhex(e["B_SECRET"]),
    public_url=e["B_URL"], dev_idp_dir=Path(e["B_DIR"]) / "devidp",
    policies_dir=Path(e["B_POLICIES"]), store_uri=e["B_STORE"],
    audit_path=Path(e["B_DIR"]) / "audit.jsonl",
)
uvicorn.run(create_app(config), host="127.0.0.1", port=int(e["B_PORT"]), log_level="warning",
            access_log=False)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    gateway = None
    try:
        with DynamoServer(None, log_path=root / "dynamo.log", allow_moto=False) as dynamo:
            store_uri = f"dynamodb://{dynamo.url.removeprefix('http://')}/cedarflow"
            secret = secrets.token_hex(32)
            settings = HandlerTierSettings(
                store_uri, root / "artifacts", secret, secrets.token_hex(32), root / "handler.log"
            )
            with HandlerTier(settings) as handler:
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                gateway = _start_gateway(root, url, port, handler.url, secret, store_uri)
                idp = DevIdentityProvider(root / "devidp", f"{url}/devidp")
                token, admin = idp.mint(USER, GROUPS), idp.mint(ADMIN, ADMIN_GROUPS)
                _report(_run(url, handler.url, bytes.fromhex(secret), token, admin, args))
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(10)
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _start_gateway(root, url, port, upstream, secret, store_uri) -> subprocess.Popen:
    env = dict(os.environ, B_UPSTREAM=upstream, B_SECRET=secret, B_URL=url, B_DIR=str(root),
               B_POLICIES=str(REPO / "policies"), B_STORE=store_uri, B_PORT=str(port),
               PYTHONPATH=str(REPO))  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", _GATEWAY], env=env, cwd=REPO)
    for _ in range(300):  # bounded: 30 s
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("the gateway did not start")
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the gateway did not answer /healthz")


class Direct(httpx.Client):
    """A client of the handler tier that signs the identity header like the gateway."""

    def __init__(self, base_url: str, secret: bytes):
        super().__init__(base_url=base_url, timeout=60)
        self.principal = Principal(subject_for(USER), USER, groups=GROUPS)
        self.secret = secret

    def send(self, request, **kwargs):
        path = request.url.path
        query = request.url.query.decode("latin-1")
        request.headers[IDENTITY_HEADER] = sign_identity(
            self.principal, request.method, path, self.secret, query=query
        )
        return super().send(request, **kwargs)


def _run(url: str, handler_url: str, secret: bytes, token: str, admin: str, args) -> dict:
    gw = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    scraper = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=60)
    direct = Direct(handler_url, secret)
    api = "/api/2.0/mlflow"
    experiment_id = gw.post(f"{api}/experiments/create", json={"name": "bench"}).json()[
        "experiment_id"
    ]
    run_id = gw.post(f"{api}/runs/create", json={"experiment_id": experiment_id}).json()["run"][
        "info"
    ]["run_id"]
    artifact = f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/blob.bin"
    gw.put(artifact, content=os.urandom(64 * 1024)).raise_for_status()
    step = iter(range(10**9))
    calls = {
        "GetRun": lambda c: c.get(f"{api}/runs/get", params={"run_id": run_id}),
        "LogMetric": lambda c: c.post(
            f"{api}/runs/log-metric",
            json={"run_id": run_id, "key": "m", "value": 1.0, "timestamp": 1, "step": next(step)},
        ),  # fmt: skip
        "SearchRuns": lambda c: c.post(
            f"{api}/runs/search", json={"experiment_ids": [experiment_id], "max_results": 10}
        ),
        "DownloadArtifact (64 KiB)": lambda c: c.get(artifact),
    }
    results = {}
    for name, call in calls.items():
        for client in (gw, direct):  # warm both paths and the gateway's caches
            for _ in range(10):
                _ok(call(client))
        reads_before = _reads(scraper)
        times = {"gateway": [], "direct": []}
        for _ in range(args.iterations):  # interleaved, so drift hits both alike
            for label, client in (("gateway", gw), ("direct", direct)):
                start = time.perf_counter()
                _ok(call(client))
                times[label].append(time.perf_counter() - start)
        reads = _reads(scraper) - reads_before
        results[name] = {
            "gateway": _percentiles(times["gateway"]),
            "direct": _percentiles(times["direct"]),
            "throughput": {
                label: _throughput(call, base, args.clients, max(50, args.iterations // 2), **kw)
                for label, base, kw in (
                    ("gateway", url, {"headers": {"Authorization": f"Bearer {token}"}}),
                    ("direct", handler_url, {"secret": secret}),
                )
            },
            "gateway_dynamodb_reads": reads,
            "iterations": args.iterations,
        }
    results["gateway resolve+decide mean (us)"] = _decide_mean_us(scraper)
    results["in-process parse+decide per second (LogMetric)"] = _decisions_per_second()
    return results


def _decisions_per_second(count: int = 2000) -> float:
    """Parse + Cedar decision of one LogMetric with warm bindings, in this process."""
    from gateway.authz.decide import Authorizer
    from gateway.authz.entities import Bindings
    from gateway.authz.policies import PolicyStore
    from gateway.routing.parse import parse_request

    authz = Authorizer(PolicyStore(REPO / "policies"))
    bindings = Bindings.from_data("experiment", "1", {"users": {"u": "editor"}})
    caller = Principal("u", USER)
    body = json.dumps({"run_id": "a" * 32, "key": "m", "value": 1, "timestamp": 1}).encode()
    headers = [(b"content-type", b"application/json")]
    start = time.perf_counter()
    for _ in range(count):
        parsed = parse_request("POST", "/api/2.0/mlflow/runs/log-metric", b"", headers, body)
        assert authz.authorize(caller, parsed, lambda ref: bindings).allowed
    return count / (time.perf_counter() - start)


def _throughput(call, base_url: str, clients: int, per_client: int, **kw) -> float:
    def worker() -> int:
        client = (
            Direct(base_url, kw["secret"])
            if "secret" in kw
            else httpx.Client(base_url=base_url, headers=kw["headers"], timeout=60)
        )
        with client:
            for _ in range(per_client):
                _ok(call(client))
        return per_client

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = sum(pool.map(lambda _: worker(), range(clients)))
    return done / (time.perf_counter() - start)


def _ok(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise SystemExit(f"{response.request.method} {response.request.url}: {response.text}")


def _metrics(scraper: httpx.Client) -> str:
    response = scraper.get("/metrics")
    _ok(response)  # a 401/403 here means the scraper is not an administrator
    return response.text


def _reads(scraper: httpx.Client) -> int:
    text = _metrics(scraper)
    match = re.search(r"^cedarflow_dynamodb_reads_total (\S+)", text, re.M)
    return int(float(match.group(1))) if match else -1  # prometheus_client writes 3.0


def _percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


def _report(results: dict) -> None:
    header = (
        f"{'call':<26}{'gw p50':>9}{'dir p50':>9}{'ratio':>7}{'gw p99':>9}{'dir p99':>9}"
        f"{'ratio':>7}{'gw rps':>9}{'dir rps':>9}{'ratio':>7}{'gw reads':>10}"
    )
    print(header)
    for name, r in results.items():
        if not isinstance(r, dict):
            print(f"{name}: {r:.0f}")
            continue
        g, d, t = r["gateway"], r["direct"], r["throughput"]
        print(
            f"{name:<26}{g['p50_ms']:>9.2f}{d['p50_ms']:>9.2f}{g['p50_ms'] / d['p50_ms']:>7.2f}"
            f"{g['p99_ms']:>9.2f}{d['p99_ms']:>9.2f}{g['p99_ms'] / d['p99_ms']:>7.2f}"
            f"{t['gateway']:>9.0f}{t['direct']:>9.0f}{t['gateway'] / t['direct']:>7.2f}"
            f"{r['gateway_dynamodb_reads']:>10}"
        )
    print(json.dumps(results, indent=1))


def _decide_mean_us(scraper: httpx.Client) -> float:
    text = _metrics(scraper)
    total = re.search(r"^cedarflow_decide_seconds_sum (\S+)", text, re.M)
    count = re.search(r"^cedarflow_decide_seconds_count (\S+)", text, re.M)
    return float(total.group(1)) / max(1.0, float(count.group(1))) * 1e6


if __name__ == "__main__":
    raise SystemExit(main())
