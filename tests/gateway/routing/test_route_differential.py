"""Our matcher picks the same route as MLflow's own router for the paths it accepts.

Paths are generated from every Flask-served template with awkward segment values; when
the gateway accepts one, werkzeug (routing the decoded path, as MLflow does) must pick
the same template, so a request is never authorized as one call and served as another.
"""

from __future__ import annotations

import warnings
from urllib.parse import unquote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow_inventory import fastapi_routes, flask_routes, flask_template

from gateway.errors import GatewayError
from gateway.routing import match_route

SEGMENT = st.one_of(
    st.sampled_from(
        [
            "1",
            "m-abc",
            "get",
            "search",
            "batchGet",
            "tags",
            "%2F",
            "%2e%2e",
            "..",
            ".",
            "a%20b",
            "x;y",
            "",
            "ü",
            "%C3%BC",
            "a/b",
            "A",
            "info",
            "artifacts",
            "%25",
        ]
    ),
    st.text(alphabet="abcXYZ019-_.~%/;", min_size=0, max_size=8),
)


def _werkzeug():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mlflow.server import app

    return app.url_map.bind("localhost")


ADAPTER = _werkzeug()
NATIVE = fastapi_routes()
FLASK_RULES = sorted(flask_routes())


def _fill(template: str, values: list[str]) -> str:
    out, i = [], 0
    for part in template.split("/"):
        if part.startswith("{"):
            out.append(values[i % len(values)] or "x")
            i += 1
        else:
            out.append(part)
    return "/".join(out)


def _werkzeug_template(method: str, decoded: str) -> str | None:
    try:
        rule, _ = ADAPTER.match(decoded, method=method, return_rule=True)
    except Exception:  # NotFound, MethodNotAllowed, RequestRedirect
        return None
    return flask_template(rule.rule)


@settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(rule=st.sampled_from(FLASK_RULES), values=st.lists(SEGMENT, min_size=1, max_size=3))
def test_accepted_paths_route_like_werkzeug(rule, values):
    method, template = rule
    raw = _fill(template, values)
    try:
        matched = match_route(method, raw)
    except GatewayError:
        return  # refused paths never reach MLflow
    if (matched.method, matched.route.path) in NATIVE:
        return  # served by a native FastAPI route, ahead of werkzeug
    theirs = _werkzeug_template(method, unquote(raw))
    assert theirs == matched.route.path, (method, raw, matched.route.path, theirs)
