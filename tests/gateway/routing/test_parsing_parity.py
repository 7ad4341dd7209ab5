"""The gateway's parser and MLflow's real handlers read the same ids from tricky requests.

Each case is sent to MLflow's own Flask app (in-process, sqlite store) and to
`parse_request`; where the gateway accepts a request, both must act on the same run,
experiment or model; where it refuses, the handler is shown acting on an id a naive
reader would not have authorized.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from gateway.errors import GatewayError
from gateway.routing.parse import parse_request

J = "application/json"


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mlflow.server import app, handlers
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as Registry
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as Tracking

    root = tmp_path_factory.mktemp("parity")
    uri = f"sqlite:///{root}/mlflow.db"
    saved = handlers._tracking_store, handlers._model_registry_store
    tracking, registry = Tracking(uri, str(root / "artifacts")), Registry(uri)
    handlers._tracking_store, handlers._model_registry_store = tracking, registry
    world = World(app.test_client(), tracking, registry, root / "artifacts")
    yield world
    handlers._tracking_store, handlers._model_registry_store = saved


class World:
    def __init__(self, client, tracking, registry, artifacts: Path):
        self.client, self.tracking, self.registry, self.artifacts = (
            client,
            tracking,
            registry,
            artifacts,
        )
        self.exp_a = tracking.create_experiment("parity-a")
        self.exp_b = tracking.create_experiment("parity-b")
        self.run_a = tracking.create_run(self.exp_a, "u", 0, [], "a").info.run_id
        self.run_b = tracking.create_run(self.exp_b, "u", 0, [], "b").info.run_id
        registry.create_registered_model("model-a")
        registry.create_registered_model("model-b")

    def send(self, method, path, query="", body=None, content_type=J):
        data = body if isinstance(body, bytes) else (json.dumps(body) if body is not None else None)
        url = f"{path}?{query}" if query else path
        kwargs = {"data": data}
        if content_type and data is not None:
            kwargs["content_type"] = content_type
        return self.client.open(url, method=method, **kwargs)

    def run_tags(self, run_id):
        return self.tracking.get_run(run_id).data.tags

    def run_params(self, run_id):
        return self.tracking.get_run(run_id).data.params


def gateway_ids(method, path, query="", body=None, content_type=J):
    raw = (
        body
        if isinstance(body, bytes)
        else (json.dumps(body).encode() if body is not None else b"")
    )
    headers = {"content-type": content_type} if content_type else {}
    parsed = parse_request(method, path, query, headers, raw)
    return [(r.kind, r.id) for r in parsed.resources]


def test_repeated_query_key_first_value(mlflow):
    q = f"run_id={mlflow.run_a}&run_id={mlflow.run_b}"
    response = mlflow.send("GET", "/api/2.0/mlflow/runs/get", q)
    assert response.json["run"]["info"]["run_id"] == mlflow.run_a
    assert gateway_ids("GET", "/api/2.0/mlflow/runs/get", q) == [("run", mlflow.run_a)]


def test_get_without_query_reads_the_body(mlflow):
    body = {"run_id": mlflow.run_b}
    response = mlflow.send("GET", "/api/2.0/mlflow/runs/get", "", body)
    assert response.json["run"]["info"]["run_id"] == mlflow.run_b
    assert gateway_ids("GET", "/api/2.0/mlflow/runs/get", "", body) == [("run", mlflow.run_b)]


def test_get_with_query_ignores_the_body(mlflow):
    body = {"run_id": mlflow.run_b}
    response = mlflow.send("GET", "/api/2.0/mlflow/runs/get", "unrelated=1", body)
    assert response.status_code == 400  # the handler never saw run_b
    with pytest.raises(GatewayError):
        gateway_ids("GET", "/api/2.0/mlflow/runs/get", "unrelated=1", body)


def test_run_uuid_only(mlflow):
    q = f"run_uuid={mlflow.run_b}"
    assert mlflow.send("GET", "/api/2.0/mlflow/runs/get", q).json["run"]["info"]["run_id"] == (
        mlflow.run_b
    )
    assert gateway_ids("GET", "/api/2.0/mlflow/runs/get", q) == [("run", mlflow.run_b)]


def test_camel_case_body(mlflow):
    # camelCase is the proto JSON name: the search handler reads it (test below); handlers
    # with a raw-key schema refuse a camel-only run id, so naming it can only fail safe
    body = {"runId": mlflow.run_b, "key": "camel", "value": "1"}
    assert mlflow.send("POST", "/api/2.0/mlflow/runs/log-parameter", "", body).status_code == 400
    assert "camel" not in mlflow.run_params(mlflow.run_b)
    assert gateway_ids("POST", "/api/2.0/mlflow/runs/log-parameter", "", body) == [
        ("run", mlflow.run_b)
    ]


def test_post_ignores_the_query(mlflow):
    body = {"run_id": mlflow.run_a, "key": "where", "value": "body"}
    q = f"run_id={mlflow.run_b}"
    assert mlflow.send("POST", "/api/2.0/mlflow/runs/set-tag", q, body).status_code == 200
    assert mlflow.run_tags(mlflow.run_a)["where"] == "body"
    assert "where" not in mlflow.run_tags(mlflow.run_b)
    assert gateway_ids("POST", "/api/2.0/mlflow/runs/set-tag", q, body) == [("run", mlflow.run_a)]


def test_disagreeing_run_id_and_run_uuid(mlflow):
    body = {"run_id": mlflow.run_a, "run_uuid": mlflow.run_b, "key": "pair", "value": "x"}
    assert mlflow.send("POST", "/api/2.0/mlflow/runs/set-tag", "", body).status_code == 200
    assert "pair" in mlflow.run_tags(mlflow.run_a)  # the handler prefers run_id...
    with pytest.raises(GatewayError):  # ...the gateway accepts neither reading
        gateway_ids("POST", "/api/2.0/mlflow/runs/set-tag", "", body)


def test_upload_artifact_writes_to_run_uuid(mlflow):
    q = f"run_id={mlflow.run_a}&run_uuid={mlflow.run_b}&path=pwned.txt"
    response = mlflow.send("POST", "/ajax-api/2.0/mlflow/upload-artifact", q, b"x", "text/plain")
    assert response.status_code == 200
    landed = list(mlflow.artifacts.rglob("pwned.txt"))
    assert len(landed) == 1 and mlflow.run_b in landed[0].parts  # the victim's run
    with pytest.raises(GatewayError):
        gateway_ids("POST", "/ajax-api/2.0/mlflow/upload-artifact", q, b"x", "text/plain")
    q = f"run_uuid={mlflow.run_b}&path=ok.txt"
    assert gateway_ids("POST", "/ajax-api/2.0/mlflow/upload-artifact", q, b"x", "text/plain") == [
        ("run", mlflow.run_b)
    ]


def test_double_encoded_body(mlflow):
    inner = {"run_id": mlflow.run_b, "key": "legacy", "value": "1"}
    body = json.dumps(json.dumps(inner)).encode()
    assert mlflow.send("POST", "/api/2.0/mlflow/runs/set-tag", "", body).status_code == 200
    assert mlflow.run_tags(mlflow.run_b)["legacy"] == "1"
    assert gateway_ids("POST", "/api/2.0/mlflow/runs/set-tag", "", body) == [("run", mlflow.run_b)]


def test_duplicate_keys(mlflow):
    body = (
        f'{{"run_id": "{mlflow.run_a}", "run_id": "{mlflow.run_b}", "key": "dup", "value": "1"}}'
    ).encode()
    assert mlflow.send("POST", "/api/2.0/mlflow/runs/set-tag", "", body).status_code == 200
    assert "dup" in mlflow.run_tags(mlflow.run_b)  # last key wins in the handler
    with pytest.raises(GatewayError):
        gateway_ids("POST", "/api/2.0/mlflow/runs/set-tag", "", body)


def test_dual_spelling(mlflow):
    body = {"run_id": mlflow.run_a, "runId": mlflow.run_b, "key": "k", "value": "v"}
    assert mlflow.send("POST", "/api/2.0/mlflow/runs/set-tag", "", body).status_code == 400
    with pytest.raises(GatewayError):
        gateway_ids("POST", "/api/2.0/mlflow/runs/set-tag", "", body)


def test_post_without_json_content_type(mlflow):
    body = {"run_id": mlflow.run_a, "key": "k", "value": "v"}
    response = mlflow.send("POST", "/api/2.0/mlflow/runs/set-tag", "", body, "text/plain")
    assert response.status_code == 400
    with pytest.raises(GatewayError):
        gateway_ids("POST", "/api/2.0/mlflow/runs/set-tag", "", body, "text/plain")


def test_delete_reads_the_body_not_the_query(mlflow):
    mlflow.registry.set_registered_model_tag("model-b", _tag("gone", "1"))
    body = {"name": "model-b", "key": "gone"}
    response = mlflow.send(
        "DELETE", "/api/2.0/mlflow/registered-models/delete-tag", "name=model-a", body, None
    )
    assert response.status_code == 200
    assert "gone" not in mlflow.registry.get_registered_model("model-b").tags
    ids = gateway_ids(
        "DELETE", "/api/2.0/mlflow/registered-models/delete-tag", "name=model-a", body, None
    )
    assert ids == [("registered_model", "model-b")]


def test_delete_with_query_only_names_nothing(mlflow):
    response = mlflow.send(
        "DELETE", "/api/2.0/mlflow/registered-models/delete-tag", "name=model-a&key=k"
    )
    assert response.status_code == 400
    with pytest.raises(GatewayError):
        gateway_ids("DELETE", "/api/2.0/mlflow/registered-models/delete-tag", "name=model-a&key=k")


def test_search_names_every_experiment(mlflow):
    body = {"experimentIds": [mlflow.exp_a, mlflow.exp_b]}
    response = mlflow.send("POST", "/api/2.0/mlflow/runs/search", "", body)
    found = {r["info"]["run_id"] for r in response.json["runs"]}
    assert found == {mlflow.run_a, mlflow.run_b}
    assert gateway_ids("POST", "/api/2.0/mlflow/runs/search", "", body) == [
        ("experiment", mlflow.exp_a),
        ("experiment", mlflow.exp_b),
    ]


def test_get_artifact_reads_run_id_or_run_uuid(mlflow):
    q = f"run_uuid={mlflow.run_b}&path=pwned.txt"
    assert mlflow.send("GET", "/get-artifact", q).status_code == 200
    assert gateway_ids("GET", "/get-artifact", q) == [("run", mlflow.run_b)]


def test_bulk_metric_history_reads_every_run_id(mlflow):
    q = f"run_id={mlflow.run_a}&run_id={mlflow.run_b}&metric_key=m"
    assert mlflow.send("GET", "/ajax-api/2.0/mlflow/metrics/get-history-bulk", q).status_code == 200
    assert gateway_ids("GET", "/ajax-api/2.0/mlflow/metrics/get-history-bulk", q) == [
        ("run", mlflow.run_a),
        ("run", mlflow.run_b),
    ]


def _tag(key, value):
    from mlflow.entities.model_registry import RegisteredModelTag

    return RegisteredModelTag(key, value)
