"""The handler tier refuses calls without a valid identity header and binds the principal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
from flask import Flask
from gw_support import SECRET, free_port
from mlflow.server.fastapi_app import _EfficientWSGIMiddleware

from store.handler.app import IdentityMiddleware
from store.handler.identity import IDENTITY_HEADER, Principal, current_principal, sign_identity

HERE = Path(__file__).parent
ALICE = Principal(subject="sub-alice", username="alice", groups=("ds-team",))
SEARCH = "/api/2.0/mlflow/experiments/search"


def wait_healthy(url: str, process: subprocess.Popen) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"handler tier exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(0.1)
    raise RuntimeError("handler tier did not become healthy")


def handler_env(data: Path, secret: bytes | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "_MLFLOW_"))}
    env.pop("CEDARFLOW_IDENTITY_SECRET", None)
    env |= {
        "_MLFLOW_SERVER_FILE_STORE": f"sqlite:///{data / 'mlflow.db'}",
        "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
        "_MLFLOW_SERVER_ARTIFACT_DESTINATION": str(data / "artifacts"),
        "_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/",
        "PYTHONPATH": os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]),
    }
    if secret is not None:
        env["CEDARFLOW_IDENTITY_SECRET"] = secret.hex()
    return env


@contextlib.contextmanager
def served(argv: list[str], env: dict[str, str], cwd: Path, port: int) -> Iterator[str]:
    """Run a handler-tier process on `port` until the block ends; yields its URL once healthy."""
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(argv, env=env, cwd=cwd)
    try:
        wait_healthy(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def sqlite_handler_tier(data: Path) -> Iterator[str]:
    """MLflow's server app behind the identity check (sqlite store), on a free port."""
    port = free_port()
    argv = [sys.executable, str(HERE / "principal_handler_tier.py"), str(port)]
    with served(argv, handler_env(data, SECRET), data, port) as url:
        yield url


@pytest.fixture(scope="module")
def handler_tier(tmp_path_factory) -> Iterator[str]:
    with sqlite_handler_tier(tmp_path_factory.mktemp("handler")) as url:
        yield url


def post(url: str, path: str, headers: dict[str, str], json: dict | None = None):
    return httpx.post(
        f"{url}{path}",
        headers=headers,
        json=json or {"max_results": 10},
        trust_env=False,
        timeout=30,
    )


def assert_refused(response) -> None:
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"


def test_health_needs_no_identity(handler_tier):
    assert httpx.get(f"{handler_tier}/health", trust_env=False).status_code == 200


def test_a_valid_header_is_served(handler_tier):
    header = sign_identity(ALICE, "POST", SEARCH, SECRET)
    response = post(handler_tier, SEARCH, {IDENTITY_HEADER: header})
    assert response.status_code == 200
    assert "experiments" in response.json()


def test_missing_forged_or_misdirected_headers_are_refused(handler_tier):
    cases = {
        "missing": {},
        "garbage": {IDENTITY_HEADER: "v1.abc.def"},
        "wrong secret": {IDENTITY_HEADER: sign_identity(ALICE, "POST", SEARCH, b"x" * 32)},
        "other path": {
            IDENTITY_HEADER: sign_identity(ALICE, "POST", "/api/2.0/mlflow/runs/search", SECRET)
        },
        "other method": {IDENTITY_HEADER: sign_identity(ALICE, "GET", SEARCH, SECRET)},
        "other query": {IDENTITY_HEADER: sign_identity(ALICE, "POST", SEARCH, SECRET, query="a")},
        "expired": {IDENTITY_HEADER: sign_identity(ALICE, "POST", SEARCH, SECRET, ttl=-60)},
    }
    statuses = {
        name: post(handler_tier, SEARCH, headers).status_code for name, headers in cases.items()
    }
    assert statuses == dict.fromkeys(cases, 401)


def test_a_replayed_header_is_refused(handler_tier):
    header = sign_identity(ALICE, "POST", SEARCH, SECRET)
    assert post(handler_tier, SEARCH, {IDENTITY_HEADER: header}).status_code == 200
    assert_refused(post(handler_tier, SEARCH, {IDENTITY_HEADER: header}))


def test_two_identity_headers_are_refused(handler_tier):
    headers = [
        (IDENTITY_HEADER, sign_identity(ALICE, "POST", SEARCH, SECRET)),
        (IDENTITY_HEADER, sign_identity(ALICE, "POST", SEARCH, SECRET)),
    ]
    response = httpx.post(f"{handler_tier}{SEARCH}", headers=headers, json={}, trust_env=False)
    assert_refused(response)


def test_runs_are_attributed_to_the_authenticated_user(handler_url, start_gateway):
    gateway = start_gateway(handler_url)
    # An administrator: the Default experiment ("0") has no bindings of its own.
    token = gateway.idp.mint("alice", ["ds-team", "admins"])
    # A browser on the public address sends its Origin; MLflow's own check must not refuse it.
    headers = {"Authorization": f"Bearer {token}", "Origin": "https://mlflow.example.com"}
    with gateway.client(headers=headers) as client:
        created = client.post(
            "/api/2.0/mlflow/runs/create",
            json={
                "experiment_id": "0",
                "user_id": "mallory",
                "tags": [{"key": "mlflow.user", "value": "mallory"}],
            },
        )
    assert created.status_code == 200, created.text
    run = created.json()["run"]
    assert run["info"]["user_id"] == "alice"
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["mlflow.user"] == "alice"


def test_the_mlflow_client_works_through_the_gateway(
    handler_url, start_gateway, monkeypatch, tmp_path
):
    gateway = start_gateway(handler_url)
    monkeypatch.setenv(
        "MLFLOW_TRACKING_TOKEN", gateway.idp.mint("", machine_client_id="trainer-client")
    )
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    client = mlflow.MlflowClient(tracking_uri=gateway.url)
    experiment_id = client.create_experiment("through-the-gateway")
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "alpha", "0.5")
    client.log_metric(run.info.run_id, "loss", 0.25)
    fetched = client.get_run(run.info.run_id)
    assert fetched.info.user_id == "svc-trainer"
    assert fetched.data.params == {"alpha": "0.5"}
    assert fetched.data.metrics == {"loss": 0.25}
    artifact = tmp_path / "weights.bin"
    artifact.write_bytes(os.urandom(3 * 1024 * 1024))
    client.log_artifact(run.info.run_id, str(artifact))
    downloaded = client.download_artifacts(run.info.run_id, "weights.bin", str(tmp_path / "out"))
    assert Path(downloaded).read_bytes() == artifact.read_bytes()


def test_without_a_secret_the_handler_tier_refuses_to_start(tmp_path):
    port = free_port()
    result = subprocess.run(
        [sys.executable, str(HERE / "principal_handler_tier.py"), str(port)],
        env=handler_env(tmp_path, None),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "CEDARFLOW_IDENTITY_SECRET" in result.stderr


def test_the_principal_reaches_flask_worker_threads():
    """MLflow runs Flask in a worker thread (anyio.to_thread); the binding must follow it."""
    flask_app = Flask(__name__)
    seen = {}

    @flask_app.route("/whoami", methods=["POST"])
    def whoami():
        principal = current_principal()
        seen["thread"] = threading.current_thread()
        return {"username": principal.username if principal else None}

    app = IdentityMiddleware(_EfficientWSGIMiddleware(flask_app), SECRET)

    async def call():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            header = sign_identity(ALICE, "POST", "/whoami", SECRET)
            return await client.post("/whoami", headers={IDENTITY_HEADER: header})

    response = asyncio.run(call())
    assert response.json() == {"username": "alice"}
    assert seen["thread"] is not threading.main_thread()
    assert current_principal() is None


def test_the_dynamodb_store_attributes_runs_to_the_principal(handler_url, start_gateway):
    gateway = start_gateway(handler_url)
    token = gateway.idp.mint("carol", ["ds-team"])
    with gateway.client(headers={"Authorization": f"Bearer {token}"}) as client:
        experiment = client.post("/api/2.0/mlflow/experiments/create", json={"name": "attributed"})
        assert experiment.status_code == 200, experiment.text
        created = client.post(
            "/api/2.0/mlflow/runs/create",
            json={
                "experiment_id": experiment.json()["experiment_id"],
                "user_id": "mallory",
                "tags": [{"key": "mlflow.user", "value": "mallory"}],
            },
        )
        assert created.status_code == 200, created.text
        run_id = created.json()["run"]["info"]["run_id"]
        fetched = client.get("/api/2.0/mlflow/runs/get", params={"run_id": run_id}).json()
    assert fetched["run"]["info"]["user_id"] == "carol"
    tags = {t["key"]: t["value"] for t in fetched["run"]["data"]["tags"]}
    assert tags["mlflow.user"] == "carol"
