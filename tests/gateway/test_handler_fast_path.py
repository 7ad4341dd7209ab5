"""MLflow's Flask calls reach Flask straight (store/handler/fast_path.py), answered as the long
way through MLflow's FastAPI app answers them."""

from __future__ import annotations

import httpx
import mlflow  # noqa: F401 - MLflow fully imported before its server modules
from gw_support import SECRET
from mlflow.server import app as flask_app
from mlflow.server.fastapi_app import app as fastapi_app
from test_handler_app import ALICE, handler_tier  # noqa: F401 - the module's handler tier

from store.handler.fast_path import FlaskFastPath, _flask_mount, direct_paths
from store.handler.identity import IDENTITY_HEADER, sign_identity

SET_TAG = "/api/2.0/mlflow/runs/set-tag"
GET_EXPERIMENT = "/api/2.0/mlflow/experiments/get-by-name"


def test_direct_paths_are_flask_rules_fastapi_does_not_serve():
    direct = direct_paths(fastapi_app, flask_app, _flask_mount(fastapi_app))
    assert ("POST", SET_TAG) in direct
    assert ("GET", "/api/2.0/mlflow/runs/get") in direct
    assert ("POST", "/ajax-api/2.0/mlflow/runs/search") in direct
    # Flask has server-info too, but FastAPI's own route answers it: it goes the long way.
    assert ("GET", "/api/3.0/mlflow/server-info") not in direct
    # Paths with variables (artifacts, traces by id) are FastAPI's or Flask's to match.
    assert not any("<" in path for _, path in direct)


def test_the_handler_app_puts_the_fast_path_in_front():
    from store.handler import app

    assert isinstance(app.app.app, FlaskFastPath)


def _get(url: str, path: str, **headers) -> httpx.Response:
    identity = sign_identity(ALICE, "GET", path, SECRET, query="experiment_name=Default")
    return httpx.get(
        f"{url}{path}",
        params={"experiment_name": "Default"},
        headers={IDENTITY_HEADER: identity, **headers},
        trust_env=False,
        timeout=30,
    )


def test_a_direct_call_carries_mlflow_security_headers(handler_tier):  # noqa: F811
    response = _get(handler_tier, GET_EXPERIMENT)
    assert response.status_code == 200
    assert response.json()["experiment"]["name"] == "Default"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "SAMEORIGIN"


def test_a_call_naming_a_workspace_goes_the_long_way(handler_tier):  # noqa: F811
    # MLflow's workspace middleware answers it (with its own status), as without the fast path.
    response = _get(handler_tier, GET_EXPERIMENT, **{"X-MLflow-Workspace": "team-a"})
    assert response.json()["error_code"] == "FEATURE_DISABLED"


def test_the_fast_path_serves_what_the_long_way_serves():
    from fastapi import FastAPI
    from flask import Flask
    from mlflow.server.fastapi_app import _EfficientWSGIMiddleware
    from starlette.responses import PlainTextResponse
    from starlette.testclient import TestClient

    from store.handler.fast_path import with_fast_path

    flask = Flask("tiny")
    flask.add_url_rule("/flask", "flask", lambda: "from flask")
    flask.add_url_rule("/both", "both", lambda: "from flask")
    flask.add_url_rule("/item/<name>", "item", lambda name: f"item {name}")

    def failing():
        raise OSError(28, "No space left on device")

    flask.add_url_rule("/failing", "failing", failing)
    app = FastAPI()
    app.add_api_route("/both", lambda: PlainTextResponse("from fastapi"))
    app.mount("/", _EfficientWSGIMiddleware(flask))
    served = with_fast_path(app, flask)
    assert isinstance(served, FlaskFastPath)
    assert served.direct >= {("GET", "/flask"), ("GET", "/failing")}
    assert ("GET", "/both") not in served.direct
    long_way, fast = TestClient(app), TestClient(served)
    for path in ("/flask", "/both", "/item/a", "/failing", "/missing"):
        answers = [(r.status_code, r.text) for r in (long_way.get(path), fast.get(path))]
        assert answers[0] == answers[1], path
    assert fast.get("/failing").status_code == 500  # Flask's own answer, either way
    assert fast.get("/flask").headers["x-content-type-options"] == "nosniff"
