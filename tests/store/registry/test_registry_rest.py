"""The registry store behind MLflow's own REST handlers (Flask test client, moto)."""

from __future__ import annotations

import uuid

import pytest
from mlflow.server import handlers
from moto import mock_aws

from store.registry import DynamoRegistryStore


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.setenv("_MLFLOW_SERVER_FILE_STORE", f"sqlite:///{tmp_path}/tracking.db")
    monkeypatch.setenv("_MLFLOW_SERVER_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setattr(handlers, "_tracking_store", None)
    monkeypatch.setattr(handlers, "_model_registry_store", None)
    with mock_aws():
        monkeypatch.setenv(
            "_MLFLOW_SERVER_REGISTRY_STORE",
            f"dynamodb://us-east-1/registry-rest-{uuid.uuid4().hex[:8]}",
        )
        from mlflow.server import app

        with app.test_client() as test_client:
            yield test_client


def call(client, method: str, path: str, body: dict | None = None):
    url = f"/api/2.0/mlflow/{path}"
    if method == "GET":
        return client.get(url, query_string=body or {})
    return client.open(url, method=method, json=body or {})


def test_register_alias_and_fetch_through_rest(client):
    response = call(client, "POST", "registered-models/create", {"name": "churn"})
    assert response.status_code == 200, response.json
    assert isinstance(handlers._get_model_registry_store(), DynamoRegistryStore)
    response = call(
        client,
        "POST",
        "model-versions/create",
        {"name": "churn", "source": "s3://bucket/model", "tags": [{"key": "k", "value": "v"}]},
    )
    assert response.status_code == 200, response.json
    assert response.json["model_version"]["version"] == "1"
    body = {"name": "churn", "alias": "champion", "version": "1"}
    assert call(client, "POST", "registered-models/alias", body).status_code == 200
    response = call(
        client, "GET", "registered-models/alias", {"name": "churn", "alias": "champion"}
    )
    assert response.json["model_version"]["tags"] == [{"key": "k", "value": "v"}]
    response = call(client, "GET", "registered-models/search", {"filter": "name LIKE 'ch%'"})
    assert [m["name"] for m in response.json["registered_models"]] == ["churn"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "registered-models/get", {"name": "nope"}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "registered-models/create", {"name": "churn"}, 400, "RESOURCE_ALREADY_EXISTS"),
        (
            "GET",
            "model-versions/get",
            {"name": "churn", "version": "9"},
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
        (
            "POST",
            "registered-models/alias",
            {"name": "churn", "alias": "champion", "version": "9"},
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
        (
            "POST",
            "model-versions/transition-stage",
            {"name": "churn", "version": "1", "stage": "Prod", "archive_existing_versions": False},
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "GET",
            "registered-models/search",
            {"filter": "name > 'a'"},
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "GET",
            "registered-models/search",
            {"page_token": "forged"},
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "POST",
            "webhooks",
            {"name": "w", "url": "https://127.0.0.1/", "events": []},
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        ("GET", "webhooks/no-such-id", None, 404, "RESOURCE_DOES_NOT_EXIST"),
    ],
)
def test_bad_input_gets_mlflow_errors(client, method, path, body, status, code):
    call(client, "POST", "registered-models/create", {"name": "churn"})
    call(client, "POST", "model-versions/create", {"name": "churn", "source": "s3://b/m"})
    response = call(client, method, path, body)
    assert response.status_code == status, response.json
    if code is not None:
        assert response.json["error_code"] == code
