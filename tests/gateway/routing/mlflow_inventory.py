"""MLflow's own route inventory, built from the installed server's apps."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

REFERENCE = Path("/work/shared/reference/mlflow-endpoints.json")
_FLASK_PARAM = re.compile(r"<(?:(path):)?([a-zA-Z_][a-zA-Z0-9_]*)>")


def flask_template(rule: str) -> str:
    """`<path:x>` → `{x:path}`, `<x>` → `{x}` (the route table's template syntax)."""
    return _FLASK_PARAM.sub(lambda m: f"{{{m.group(2)}{':path' if m.group(1) else ''}}}", rule)


def served_routes() -> set[tuple[str, str]]:
    """(method, template) pairs the plain `mlflow server` app serves (HEAD/OPTIONS folded)."""
    return fastapi_routes() | flask_routes()


def fastapi_routes() -> set[tuple[str, str]]:
    """Routes MLflow serves natively in FastAPI, ahead of the mounted Flask app."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.routing import _IncludedRouter
        from mlflow.server.fastapi_app import app as fastapi_app
        from starlette.routing import Mount

    served: set[tuple[str, str]] = set()
    for route in fastapi_app.router.routes:
        if isinstance(route, _IncludedRouter):
            for ctx in route.effective_route_contexts():
                for method in ctx.methods or ():
                    if method not in ("HEAD", "OPTIONS"):
                        served.add((method, ctx.path))  # ctx.path keeps {x:path}
        elif not isinstance(route, Mount):  # the Mount is the Flask app
            for method in getattr(route, "methods", None) or ():
                if method not in ("HEAD", "OPTIONS"):
                    served.add((method, route.path))
    return served


def flask_routes() -> set[tuple[str, str]]:
    """Routes of MLflow's Flask app (mounted at / behind the FastAPI routes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mlflow.server import app as flask_app

    return {
        (method, flask_template(rule.rule))
        for rule in flask_app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def reference_routes() -> set[tuple[str, str]]:
    """The measured inventory shipped with the design notes (plain server, no basic-auth)."""
    rows = json.loads(REFERENCE.read_text())
    return {
        (row["method"], flask_template(row["path"])) for row in rows if row.get("area") != "auth"
    }
