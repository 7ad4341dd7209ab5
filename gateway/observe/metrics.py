"""Prometheus metrics of the request path, served at `/metrics` by prometheus_client.

`GET /metrics` is a call like MLflow's: authenticated the same way (bearer token or browser
session) and decided by the policies as `GetMetrics` on the workspace (administrators only,
by default), with an audit line; its row is in routing/tables/gateway.py.

- `cedarflow_decisions_total{action,outcome}`: decisions by action and allow/deny/refused;
- `cedarflow_decide_seconds`: time to resolve and decide one request (histogram);
- `cedarflow_upstream_seconds`: time until the handler tier's response headers (histogram);
- `cedarflow_dynamodb_reads_total`: DynamoDB reads made by the gateway's resolver.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


class Metrics:
    """The gateway's metrics, in a registry of their own (one per app, never process-global)."""

    def __init__(self, dynamodb_reads: Callable[[], int] = lambda: 0) -> None:
        self.registry = CollectorRegistry()
        self._decisions = Counter(
            "cedarflow_decisions",
            "Authorization decisions by action and outcome.",
            ("action", "outcome"),
            registry=self.registry,
        )
        self._decide = Histogram(
            "cedarflow_decide_seconds",
            "Resolve and decide one request.",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._upstream = Histogram(
            "cedarflow_upstream_seconds",
            "Handler tier time to response headers.",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_DynamoReads(dynamodb_reads))

    def count_decision(self, action: str, outcome: str) -> None:
        self._decisions.labels(action or "-", outcome).inc()

    def observe_decide(self, seconds: float) -> None:
        self._decide.observe(seconds)

    def observe_upstream(self, seconds: float) -> None:
        self._upstream.observe(seconds)

    async def endpoint(self, request: Request) -> Response:
        encode, media_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(self.registry), media_type=media_type)


class _DynamoReads(Collector):
    """`cedarflow_dynamodb_reads_total`: a count kept by the resolver, not by this module."""

    def __init__(self, reads: Callable[[], int]) -> None:
        self._reads = reads

    def collect(self):
        yield CounterMetricFamily(
            "cedarflow_dynamodb_reads", "DynamoDB reads made by the gateway.", value=self._reads()
        )
