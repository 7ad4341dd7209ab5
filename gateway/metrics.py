"""Prometheus metrics of the authorization step, served at `/metrics` (text format 0.0.4).

`GET /metrics` is a call like MLflow's: authenticated the same way (bearer token or browser
session) and decided by the policies as `GetMetrics` on the workspace (administrators only,
by default), with an audit line. `METRICS_ROUTE` is its row, beside MLflow's route table.

- `cedarflow_decisions_total{action,outcome}`: decisions by action and allow/deny/refused;
- `cedarflow_decide_seconds`: time to resolve and decide one request (histogram);
- `cedarflow_upstream_seconds`: time until the handler tier's response headers (histogram);
- `cedarflow_dynamodb_reads_total`: DynamoDB reads made by the gateway's resolver.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter

from starlette.requests import Request
from starlette.responses import Response

from gateway.request_parse import ParsedRequest, ResourceRef
from gateway.routes.model import NONE, RefSpec, Route, RouteMatch
from store.vocabulary import DEFAULT_WORKSPACE, WORKSPACE

METRICS_PATH = "/metrics"
METRICS_ACTION = "GetMetrics"
METRICS_ROUTE = Route(
    "GET", METRICS_PATH, "gateway", METRICS_ACTION, refs=(RefSpec(WORKSPACE),), params=NONE
)


def metrics_request(method: str, path: str) -> ParsedRequest | None:
    """`GET /metrics` as a parsed request on the workspace; None for every other call."""
    if method.upper() != "GET" or path != METRICS_PATH:
        return None
    match = RouteMatch(METRICS_ROUTE, "GET", METRICS_PATH, ())
    ref = ResourceRef(WORKSPACE, DEFAULT_WORKSPACE)
    return ParsedRequest(METRICS_ACTION, METRICS_ROUTE, match, (ref,))


_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...] = _BUCKETS):
        self.name, self.help, self.buckets = name, help_text, buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.total += seconds
        self.n += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        running = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            lines.append(f'{self.name}_bucket{{le="{bound}"}} {running}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.n}')
        lines += [f"{self.name}_sum {self.total}", f"{self.name}_count {self.n}"]
        return lines


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.decisions: Counter[tuple[str, str]] = Counter()
        self.decide = Histogram("cedarflow_decide_seconds", "Resolve and decide one request.")
        self.upstream = Histogram(
            "cedarflow_upstream_seconds", "Handler tier time to response headers."
        )
        self.dynamodb_reads = 0

    def count_decision(self, action: str, outcome: str) -> None:
        with self._lock:
            self.decisions[(action or "-", outcome)] += 1

    def observe_decide(self, seconds: float) -> None:
        with self._lock:
            self.decide.observe(seconds)

    def observe_upstream(self, seconds: float) -> None:
        with self._lock:
            self.upstream.observe(seconds)

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP cedarflow_decisions_total Authorization decisions by action and outcome.",
                "# TYPE cedarflow_decisions_total counter",
            ]
            for (action, outcome), n in sorted(self.decisions.items()):
                lines.append(
                    f'cedarflow_decisions_total{{action="{_esc(action)}",outcome="{outcome}"}} {n}'
                )
            lines += self.decide.render() + self.upstream.render()
            lines += [
                "# HELP cedarflow_dynamodb_reads_total DynamoDB reads made by the gateway.",
                "# TYPE cedarflow_dynamodb_reads_total counter",
                f"cedarflow_dynamodb_reads_total {self.dynamodb_reads}",
            ]
        return "\n".join(lines) + "\n"

    async def endpoint(self, request: Request) -> Response:
        return Response(self.render(), media_type="text/plain; version=0.0.4")


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
