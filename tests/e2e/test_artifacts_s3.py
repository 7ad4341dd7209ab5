"""The artifact proxy of the handler tier with an S3 destination (moto's S3 server process).

Run, logged-model and trace artifacts go up and come back through
`/api/2.0/mlflow-artifacts/...` and land in the bucket; a multipart upload goes through
`mpu/create` → presigned part URLs → `mpu/complete`, as MLflow's client does it.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from gateway.stack import processes
from gateway.stack.handler_tier import HandlerTierSettings, free_port, handler_env
from store.handler.identity import Principal, sign_identity

BUCKET = "cedarflow-artifacts"
SECRET = os.urandom(32)
ALICE = Principal(subject="alice-sub", username="alice", groups=("data-science",))
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _wait(url: str, proc, what: str, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=2, trust_env=False)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{what} did not answer at {url}")


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto-s3") / "moto.log"
    server = Path(sys.executable).with_name("moto_server")
    proc = processes.spawn(
        [str(server), "-H", "127.0.0.1", "-p", str(port)], env={**os.environ}, log_path=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, proc, "moto_server")
        s3 = boto3.client("s3", endpoint_url=url, **_boto_credentials())
        s3.create_bucket(Bucket=BUCKET)
        yield url
    finally:
        processes.stop(proc)


def _boto_credentials() -> dict:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_ENV["AWS_DEFAULT_REGION"],
    }


@pytest.fixture(scope="module")
def handler_url(s3_endpoint, dynalite_endpoint, tmp_path_factory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("handler-s3")
    yield from _handler(data, dynalite_endpoint, s3_endpoint, f"s3://{BUCKET}/root")


def _handler(data: Path, dynalite_endpoint: str, s3_endpoint: str, destination: str):
    settings = HandlerTierSettings(
        store_uri=f"dynamodb://{dynalite_endpoint.removeprefix('http://')}/s3{uuid.uuid4().hex[:8]}",
        artifacts_dir=data / "unused",
        identity_secret=SECRET.hex(),
        page_token_secret=os.urandom(16).hex(),
    )
    env = handler_env(settings) | S3_ENV
    env["_MLFLOW_SERVER_ARTIFACT_DESTINATION"] = destination
    env["MLFLOW_S3_ENDPOINT_URL"] = s3_endpoint
    port = free_port()
    proc = processes.spawn(
        [sys.executable, "-m", "uvicorn", "store.handler.app:app", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--no-access-log"],
        env=env,
        log_path=data / "handler.log",
        cwd=data,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/health", proc, "handler tier")
        yield url
    finally:
        processes.stop(proc)


def call(url: str, method: str, path: str, **kwargs) -> httpx.Response:
    """One request to the handler tier, carrying alice's signed identity."""
    query = str(httpx.QueryParams(kwargs.get("params") or {}))
    headers = {
        "X-Cedarflow-Identity": sign_identity(ALICE, method, path, SECRET, query=query),
        **kwargs.pop("headers", {}),
    }
    return httpx.request(method, url + path, headers=headers, timeout=60, trust_env=False, **kwargs)


def bucket_keys(s3_endpoint: str, prefix: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, **_boto_credentials())
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


@pytest.fixture(scope="module")
def experiment_and_run(handler_url) -> tuple[str, str]:
    created = call(handler_url, "POST", "/api/2.0/mlflow/experiments/create", json={"name": "s3"})
    assert created.status_code == 200, created.text
    experiment_id = created.json()["experiment_id"]
    run = call(
        handler_url, "POST", "/api/2.0/mlflow/runs/create", json={"experiment_id": experiment_id}
    )
    assert run.status_code == 200, run.text
    assert run.json()["run"]["info"]["artifact_uri"].startswith("mlflow-artifacts:/")
    return experiment_id, run.json()["run"]["info"]["run_id"]


ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.mark.slow
def test_run_artifact_upload_list_download(handler_url, s3_endpoint, experiment_and_run):
    experiment_id, run_id = experiment_and_run
    path = f"{experiment_id}/{run_id}/artifacts/docs/notes.txt"
    put = call(handler_url, "PUT", f"{ARTIFACTS}/{path}", content=b"hello s3")
    assert put.status_code == 200, put.text
    listed = call(
        handler_url, "GET", ARTIFACTS, params={"path": f"{experiment_id}/{run_id}/artifacts/docs"}
    )
    assert listed.status_code == 200, listed.text
    assert [f["path"] for f in listed.json()["files"]] == ["notes.txt"]
    got = call(handler_url, "GET", f"{ARTIFACTS}/{path}")
    assert got.status_code == 200 and got.content == b"hello s3"
    assert bucket_keys(s3_endpoint, f"root/{experiment_id}/{run_id}/") == [f"root/{path}"]


@pytest.mark.slow
def test_logged_model_and_trace_artifacts_land_in_the_bucket(
    handler_url, s3_endpoint, experiment_and_run
):
    experiment_id, _ = experiment_and_run
    model = call(
        handler_url, "POST", "/api/2.0/mlflow/logged-models", json={"experiment_id": experiment_id}
    )
    assert model.status_code == 200, model.text
    info = model.json()["model"]["info"]
    assert info["artifact_uri"] == (
        f"mlflow-artifacts:/{experiment_id}/models/{info['model_id']}/artifacts"
    )
    model_path = f"{experiment_id}/models/{info['model_id']}/artifacts/MLmodel"
    trace_path = f"{experiment_id}/traces/tr-{uuid.uuid4().hex}/artifacts/traces.json"
    for path, body in ((model_path, b"flavors: {}\n"), (trace_path, b'{"spans": []}')):
        assert call(handler_url, "PUT", f"{ARTIFACTS}/{path}", content=body).status_code == 200
        assert call(handler_url, "GET", f"{ARTIFACTS}/{path}").content == body
        assert bucket_keys(s3_endpoint, f"root/{path}") == [f"root/{path}"]


@pytest.mark.slow
def test_multipart_upload_through_the_proxy(handler_url, s3_endpoint, experiment_and_run):
    experiment_id, run_id = experiment_and_run
    directory = f"{experiment_id}/{run_id}/artifacts"
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1024)]
    created = call(
        handler_url,
        "POST",
        f"/api/2.0/mlflow-artifacts/mpu/create/{directory}",
        json={"path": "big.bin", "num_parts": len(parts)},
    )
    assert created.status_code == 200, created.text
    body = created.json()
    uploaded = []
    for credential, data in zip(body["credentials"], parts, strict=True):
        sent = httpx.put(credential["url"], content=data, timeout=120, trust_env=False)
        assert sent.status_code == 200, sent.text
        uploaded.append({"part_number": credential["part_number"], "etag": sent.headers["ETag"]})
    done = call(
        handler_url,
        "POST",
        f"/api/2.0/mlflow-artifacts/mpu/complete/{directory}",
        json={"path": "big.bin", "upload_id": body["upload_id"], "parts": uploaded},
    )
    assert done.status_code == 200, done.text
    got = call(handler_url, "GET", f"{ARTIFACTS}/{directory}/big.bin")
    assert got.status_code == 200 and got.content == b"".join(parts)


@pytest.mark.slow
def test_a_bucket_that_refuses_the_upload_is_a_json_503_and_nothing_is_listed(
    s3_endpoint, dynalite_endpoint, tmp_path
):
    gone = f"cedarflow-gone-{uuid.uuid4().hex[:8]}"  # never created: every put fails
    for url in _handler(tmp_path, dynalite_endpoint, s3_endpoint, f"s3://{gone}/root"):
        created = call(url, "POST", "/api/2.0/mlflow/experiments/create", json={"name": gone})
        run = call(
            url, "POST", "/api/2.0/mlflow/runs/create",
            json={"experiment_id": created.json()["experiment_id"]},
        ).json()["run"]["info"]  # fmt: skip
        root = run["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")
        put = call(url, "PUT", f"{ARTIFACTS}/{root}/model.bin", content=b"m" * 4096)
        assert put.status_code == 503, put.text
        assert put.headers["content-type"].startswith("application/json")
        assert put.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert gone not in put.text
        assert put.json()["message"] == (
            "The artifact store could not complete the call (NoSuchBucket)."
        )
        boto3.client("s3", endpoint_url=s3_endpoint, **_boto_credentials()).create_bucket(
            Bucket=gone
        )
        listed = call(url, "GET", ARTIFACTS, params={"path": root})
        assert listed.status_code == 200, listed.text
        assert listed.json().get("files", []) == []
