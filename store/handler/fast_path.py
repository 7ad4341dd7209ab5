"""MLflow's Flask calls handed straight to its Flask app, past the FastAPI app around it.

MLflow's server app is a FastAPI app with a dozen routers of its own and the Flask app (every
REST call of tracking and the registry) mounted at "/" behind them. Each request goes through
three HTTP middlewares and a match against every router before it falls through to Flask: about
half of this tier's CPU on a small call such as `SetTag`. `FlaskFastPath` sends the requests
FastAPI has no route for (a set of exact paths fixed at start) to the same Flask app through
the mounted WSGI adapter itself, with what matters of the skipped layers kept:

- MLflow's security headers (its own middleware wraps the fast path);
- workspaces: the fast path is off when MLflow's workspaces are on, and a request naming a
  workspace goes the long way, where MLflow answers it.

What it skips does nothing for these calls: gateway timing (gateway routes only), the FastAPI
app's exception handlers (Flask answers its own errors: nothing it raises reaches them), CORS
and host checks (the gateway drops `Origin`, checks origins itself, and is the only caller this
tier accepts).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

_WORKSPACE_HEADER = b"x-mlflow-workspace"


class FlaskFastPath:
    """Route exact Flask paths FastAPI does not serve straight to the Flask app."""

    def __init__(self, app: ASGIApp, flask: ASGIApp, direct: Iterable[tuple[str, str]]) -> None:
        self.app = app
        self.flask = flask
        self.direct = frozenset(direct)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._direct(scope):
            await self.flask(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _direct(self, scope: Scope) -> bool:
        if (scope["method"], scope["path"]) not in self.direct or scope.get("root_path"):
            return False
        return not any(k.lower() == _WORKSPACE_HEADER and v.strip() for k, v in scope["headers"])


def with_fast_path(fastapi_app, flask_app) -> ASGIApp:
    """MLflow's FastAPI app with the fast path in front (the app alone where it cannot apply)."""
    from mlflow.environment_variables import MLFLOW_ENABLE_WORKSPACES
    from mlflow.server.fastapi_security import SecurityHeadersMiddleware

    mount = _flask_mount(fastapi_app)
    if mount is None or MLFLOW_ENABLE_WORKSPACES.get():
        return fastapi_app
    flask = SecurityHeadersMiddleware(mount.app)
    return FlaskFastPath(fastapi_app, flask, direct_paths(fastapi_app, flask_app, mount))


def direct_paths(fastapi_app, flask_app, mount: Mount) -> set[tuple[str, str]]:
    """(method, path) of every Flask rule without variables that no FastAPI route matches."""
    routes = [r for r in fastapi_app.router.routes if r is not mount]
    direct = set()
    for rule in flask_app.url_map.iter_rules():
        if rule.arguments:
            continue
        for method in rule.methods or ():
            scope = {"type": "http", "method": method, "path": rule.rule, "root_path": ""}
            if not any(route.matches(scope)[0] != Match.NONE for route in routes):
                direct.add((method, rule.rule))
    return direct


def _flask_mount(fastapi_app) -> Mount | None:
    """The catch-all mount of the Flask app (the last route of MLflow's app)."""
    routes = fastapi_app.router.routes
    last = routes[-1] if routes else None
    return last if isinstance(last, Mount) and last.path == "" else None
