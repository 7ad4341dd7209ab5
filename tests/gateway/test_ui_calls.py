"""The UI's account call and its probes, answered by the gateway as MLflow answers them.

`users/current` names the signed-in caller (MLflow serves it only with its basic-auth app).
The probes for features this deployment does not offer, and a search sent with an empty list
of experiments, are answered exactly as MLflow 3.17.2's own server answers them (its ASGI app,
in-process, on sqlite), and never reach the handler tier.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator

import pytest

ASSISTANT_CONFIG = "/ajax-api/3.0/mlflow/assistant/config"
ASSISTANT_PROVIDERS = "/ajax-api/3.0/mlflow/assistant/providers"
TELEMETRY = "/ajax-api/3.0/mlflow/ui-telemetry"
GATEWAY_PROXY = "/ajax-api/2.0/mlflow/gateway-proxy"
PROBES = [
    ("GET", ASSISTANT_CONFIG, None),
    ("GET", TELEMETRY, None),
    ("POST", TELEMETRY, {"records": [{"event_name": "click", "timestamp_ns": 1}]}),
    ("GET", f"{GATEWAY_PROXY}?gateway_path=api/2.0/endpoints/", None),
    ("POST", GATEWAY_PROXY, {"gateway_path": "api/2.0/endpoints/"}),
    ("GET", "/api/3.0/mlflow/mcp-servers?max_results=25", None),
    ("GET", "/ajax-api/3.0/mlflow/mcp-servers", None),
]
EMPTY_SEARCHES = [
    ("/ajax-api/3.0/mlflow/traces/search", {"locations": [], "max_results": 1}),
    ("/api/3.0/mlflow/traces/search", {"locations": [{}]}),
    ("/api/2.0/mlflow/runs/search", {"experiment_ids": []}),
    ("/ajax-api/2.0/mlflow/logged-models/search", {"experiment_ids": []}),
]


def bearer(gateway, user: str, groups: tuple[str, ...] = ()) -> dict:
    return {"Authorization": f"Bearer {gateway.idp.mint(user, groups)}"}


@pytest.fixture(scope="module")
def plain_mlflow(tmp_path_factory) -> Iterator[object]:
    """MLflow's own server app (Flask handlers inside its ASGI app) on sqlite, without the AI
    gateway, telemetry, an assistant provider or an MCP server."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mlflow.server import app, handlers
        from mlflow.server.fastapi_app import create_fastapi_app
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as Registry
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as Tracking
        from starlette.testclient import TestClient

    root = tmp_path_factory.mktemp("plain-mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    saved = handlers._tracking_store, handlers._model_registry_store
    handlers._tracking_store = Tracking(uri, str(root / "artifacts"))
    handlers._model_registry_store = Registry(uri)
    with TestClient(create_fastapi_app(app), base_url="http://localhost") as client:
        yield client
    handlers._tracking_store, handlers._model_registry_store = saved


@pytest.mark.parametrize("path", ["/api/2.0/mlflow/users/current",
                                  "/ajax-api/2.0/mlflow/users/current"])  # fmt: skip
def test_users_current_names_the_signed_in_caller(gateway, echo_upstream, path):
    with gateway.client() as client:
        alice = client.get(path, headers=bearer(gateway, "alice", ("ds-team",)))
        bob = client.get(path, headers=bearer(gateway, "bob"))  # bound to nothing
    assert alice.status_code == 200 and bob.status_code == 200
    body = alice.json()
    assert body["user"]["username"] == "alice" and body["user"]["is_admin"] is False
    assert isinstance(body["user"]["id"], int)
    assert body["user"]["id"] != bob.json()["user"]["id"]
    assert bob.json()["user"]["username"] == "bob"
    assert echo_upstream[0].received == []  # answered by the gateway


def test_users_current_without_a_token_is_401(gateway, echo_upstream):
    with gateway.client() as client:
        response = client.get("/ajax-api/2.0/mlflow/users/current")
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    assert echo_upstream[0].received == []


@pytest.mark.parametrize(("method", "target", "body"), PROBES)
def test_probes_are_answered_as_a_plain_server_answers_them(
    gateway, echo_upstream, plain_mlflow, method, target, body
):
    expected = plain_mlflow.request(method, target, json=body)
    with gateway.client() as client:
        answered = client.request(method, target, json=body, headers=bearer(gateway, "bob"))
    assert (answered.status_code, answered.json()) == (expected.status_code, expected.json())
    assert echo_upstream[0].received == []


def test_the_assistant_is_reported_as_not_set_up(gateway, echo_upstream, plain_mlflow):
    # A plain server lists the assistant CLIs it finds on its own host: here none is offered.
    expected = plain_mlflow.get(ASSISTANT_PROVIDERS).json()
    with gateway.client() as client:
        answered = client.get(ASSISTANT_PROVIDERS, headers=bearer(gateway, "bob")).json()
    assert answered.keys() == expected.keys()
    assert answered == {"providers": [], "resolved": None, "gateway_vendor_options": {}}
    assert echo_upstream[0].received == []


def test_probes_need_a_token_like_every_call(gateway):
    with gateway.client() as client:
        assert client.get(ASSISTANT_CONFIG).status_code == 401
        assert client.post(TELEMETRY, json={"records": []}).status_code == 401


@pytest.mark.parametrize(("target", "body"), EMPTY_SEARCHES)
def test_a_search_sent_with_an_empty_list_is_answered_as_mlflow_answers_it(
    gateway, echo_upstream, plain_mlflow, target, body
):
    expected = plain_mlflow.post(target, json=body)
    with gateway.client() as client:
        answered = client.post(target, json=body, headers=bearer(gateway, "bob"))
    assert (answered.status_code, answered.json()) == (expected.status_code, expected.json())
    assert expected.json() == {}
    assert echo_upstream[0].received == []  # nothing is read for anybody


def test_a_search_without_its_list_is_still_refused(gateway, echo_upstream):
    with gateway.client() as client:
        response = client.post(
            "/ajax-api/3.0/mlflow/traces/search",
            content=json.dumps({"max_results": 1}),
            headers={**bearer(gateway, "bob"), "Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert echo_upstream[0].received == []


def test_the_ui_is_told_there_is_no_ai_gateway(start_gateway, handler_url):
    gateway = start_gateway(handler_url)
    with gateway.client() as client:
        info = client.get("/ajax-api/3.0/mlflow/server-info", headers=bearer(gateway, "bob"))
    assert info.status_code == 200
    assert info.json()["features_enabled"] == {"gateway": False}
