"""When the table of role bindings cannot be read, calls are refused as unavailable, never let
through and never answered 500."""

from __future__ import annotations

import pytest
from gw_support import free_port

PERMISSIONS = "/api/3.0/cedarflow/permissions"
CALLS = [
    ("GET", "/api/2.0/mlflow/experiments/get", "experiment", None),
    ("GET", "/api/2.0/mlflow/runs/get", "run", None),
    ("POST", "/api/2.0/mlflow/runs/log-metric", "run", {"key": "m", "value": 1, "timestamp": 1}),
    ("GET", "/api/2.0/mlflow/registered-models/get", "model", None),
    ("POST", "/api/2.0/mlflow/registered-models/alias", "model", {"alias": "a", "version": "1"}),
    ("GET", "/api/2.0/mlflow/experiments/get-by-name", "name", None),
    ("GET", f"{PERMISSIONS}/effective", "grants", None),
    ("POST", f"{PERMISSIONS}/grant", "grants", {"group": "video", "role": "editor"}),
]


def _arguments(target: str, alices) -> dict:
    return {
        "experiment": {"experiment_id": alices.experiment_id},
        "run": {"run_id": alices.run_id},
        "model": {"name": "some-model"},
        "name": {"experiment_name": "some-experiment"},
        "grants": {"resource_type": "experiment", "resource_id": alices.experiment_id},
    }[target]


@pytest.fixture
def unreadable_gateway(start_gateway, echo_upstream):
    """A gateway whose table is on a port where no DynamoDB answers."""
    store_uri = f"dynamodb://127.0.0.1:{free_port()}/bindings"
    return start_gateway(echo_upstream[1], store_uri=store_uri)


@pytest.mark.parametrize(("method", "path", "target", "body"), CALLS, ids=[c[1] for c in CALLS])
def test_a_call_is_refused_as_unavailable_when_bindings_cannot_be_read(
    unreadable_gateway, echo_upstream, alices, method, path, target, body
):
    echo, _ = echo_upstream
    token = unreadable_gateway.idp.mint("alice", ["ds-team"])
    arguments = _arguments(target, alices)
    with unreadable_gateway.client(headers={"Authorization": f"Bearer {token}"}) as client:
        if method == "GET":
            response = client.get(path, params=arguments)
        else:
            response = client.post(path, json=arguments | body)
    assert response.status_code == 503, response.text
    assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert echo.received == []  # nothing reached the handler tier
