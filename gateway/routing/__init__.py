"""The one route table: every (method, path) MLflow's server serves → Cedar action, or refusal,
and the gateway's own calls (routing/tables/gateway.py), all matched by one matcher.

`match_route(method, raw_path)` returns a RouteMatch (the row, the canonical path, the path
parameters) or raises GatewayError (400 for a malformed path, 403 for unknown or not offered).
"""

from __future__ import annotations

from functools import cache, lru_cache

from gateway.routing.matcher import RouteTable, canonical_path
from gateway.routing.model import RefSpec, Route, RouteMatch
from gateway.routing.tables.gateway import gateway_routes
from gateway.routing.tables.genai import genai_routes
from gateway.routing.tables.other import other_routes
from gateway.routing.tables.registry import registry_routes
from gateway.routing.tables.traces import trace_routes
from gateway.routing.tables.tracking import tracking_routes
from gateway.routing.tables.ui import account_routes, ui_probe_routes
from gateway.routing.tables.webhooks import webhook_routes

__all__ = [
    "RefSpec",
    "Route",
    "RouteMatch",
    "RouteTable",
    "all_routes",
    "canonical_path",
    "match_route",
    "mlflow_routes",
    "offered_actions",
    "route_table",
]


def mlflow_routes() -> tuple[Route, ...]:
    """The rows of every route MLflow's server serves."""
    return (
        *tracking_routes(),
        *trace_routes(),
        *genai_routes(),
        *registry_routes(),
        *other_routes(),
        *ui_probe_routes(),
        *webhook_routes(),
    )


def all_routes() -> tuple[Route, ...]:
    """MLflow's rows and the gateway's own: everything one matcher routes."""
    return (*mlflow_routes(), *gateway_routes(), *account_routes())


@cache
def route_table() -> RouteTable:
    return RouteTable(all_routes())


@lru_cache(maxsize=8192)
def match_route(method: str, raw_path: str) -> RouteMatch:
    """Match a request's method and raw (still percent-encoded) path, or raise GatewayError."""
    return route_table().match(method, raw_path)  # refusals are raised, never cached


def offered_actions() -> frozenset[str]:
    """Every Cedar action the table can ask about, including per-reference actions."""
    actions: set[str] = set()
    for route in route_table().routes:
        if route.action and route.decided:
            actions.add(route.action)
            actions.update(r.action for r in route.refs if r.action)
    return frozenset(actions)
