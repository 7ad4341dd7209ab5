"""An artifact store that refuses a write: the client gets MLflow's JSON 503, never a bare 500,
and nothing half-written is listed afterwards."""

from __future__ import annotations

import socket
import time
import uuid

import httpx
import pytest

ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


def _run_root(stack, client: httpx.Client) -> str:
    experiment = client.post(
        "/api/2.0/mlflow/experiments/create", json={"name": f"faults-{uuid.uuid4().hex[:8]}"}
    ).json()["experiment_id"]
    run = client.post("/api/2.0/mlflow/runs/create", json={"experiment_id": experiment})
    return run.json()["run"]["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")


def _client(stack) -> httpx.Client:
    headers = {"Authorization": f"Bearer {stack.token('alice', ['vision'])}"}
    return httpx.Client(base_url=stack.url, headers=headers, timeout=120)


def _listed(client: httpx.Client, path: str) -> list[str]:
    answer = client.get(ARTIFACTS, params={"path": path})
    assert answer.status_code == 200, answer.text
    return [entry["path"] for entry in answer.json().get("files", [])]


@pytest.mark.slow
def test_an_unwritable_artifact_folder_is_a_json_503(stack) -> None:
    with _client(stack) as client:
        root = _run_root(stack, client)
        run_dir = stack.data_dir / "artifacts" / root.rsplit("/", 1)[0]
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        run_dir.write_text("in the way")  # works as root too, unlike a chmod
        try:
            put = client.put(f"{ARTIFACTS}/{root}/model/weights.bin", content=b"w" * 4096)
            assert put.status_code == 503, put.text
            assert put.headers["content-type"].startswith("application/json")
            assert put.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
            assert "artifact store" in put.json()["message"]
            assert str(stack.data_dir) not in put.text
        finally:
            run_dir.unlink()
        assert _listed(client, root) == []


@pytest.mark.slow
def test_an_upload_cut_short_leaves_nothing_listed(stack) -> None:
    with _client(stack) as client:
        root = _run_root(stack, client)
        token = client.headers["authorization"]
        host, port = stack.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            head = (
                f"PUT {ARTIFACTS}/{root}/cut.bin HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: {token}\r\nContent-Length: 400000\r\n\r\n"
            )
            sock.sendall(head.encode() + b"c" * 100_000)
            time.sleep(1)  # the first part reaches the handler tier before the cut
        for _ in range(50):  # the handler tier notices the cut on its own time
            assert _listed(client, root) == []
            time.sleep(0.1)
        put = client.put(f"{ARTIFACTS}/{root}/whole.bin", content=b"w" * 1000)
        assert put.status_code == 200, put.text
        assert _listed(client, root) == ["whole.bin"]
