"""SIGTERM: serve stops taking calls, lets the one in flight finish, and exits 0."""

from __future__ import annotations

import threading
import uuid

import httpx
from process_support import processes_mentioning, wait_until_gone
from serve_support import ServeProcess, aws_client


def test_sigterm_drains_the_call_in_flight_and_exits_0(
    serve_env, table, user_pool, bucket, moto_endpoint, tmp_path
):
    marker = f"serve-{uuid.uuid4().hex}"
    password = user_pool.add_user(f"drain-{marker[-6:]}", ["vision"])
    args = ["--table", table, "--artifacts", f"s3://{bucket}/drain", "--workers", "1"]
    args += ["--drain-seconds", "60", *user_pool.serve_args()]
    env = {**serve_env, "CEDARFLOW_TEST_MARKER": marker}
    serve = ServeProcess(args, env, tmp_path / "serve.log").start()
    token = user_pool.sign_in(f"drain-{marker[-6:]}", password)
    headers = {"Authorization": f"Bearer {token}"}
    api = f"{serve.url}/api/2.0/mlflow"
    try:
        experiment = httpx.post(
            f"{api}/experiments/create", json={"name": marker}, headers=headers, timeout=60
        ).json()["experiment_id"]
        run = httpx.post(
            f"{api}/runs/create", json={"experiment_id": experiment}, headers=headers, timeout=60
        ).json()["run"]
        path = run["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")

        first_part_sent = threading.Event()
        finish_body = threading.Event()

        def body():
            yield b"a" * 65536
            first_part_sent.set()
            finish_body.wait(120)
            yield b"b" * 65536

        answer: dict = {}

        def upload() -> None:
            answer["response"] = httpx.put(
                f"{serve.url}/api/2.0/mlflow-artifacts/artifacts/{path}/model.bin",
                content=body(),
                headers=headers,
                timeout=120,
            )

        uploader = threading.Thread(target=upload)
        uploader.start()
        assert first_part_sent.wait(60)
        serve.terminate()
        # Draining: new connections are refused while the upload is still open.
        refused = False
        for _ in range(600):
            try:
                httpx.get(f"{serve.url}/healthz", timeout=2)
            except httpx.TransportError:
                refused = True
                break
            threading.Event().wait(0.05)
        assert refused, "serve still took new calls after SIGTERM"
        assert serve.proc.poll() is None, "serve exited with a call in flight"
        finish_body.set()
        uploader.join(120)

        assert answer["response"].status_code == 200, answer["response"].text
        assert serve.wait(120) == 0, serve.stderr
        stored = aws_client("s3", moto_endpoint).get_object(
            Bucket=bucket, Key=f"drain/{path}/model.bin"
        )
        assert stored["Body"].read() == b"a" * 65536 + b"b" * 65536
        assert wait_until_gone(processes_mentioning(marker, environment=True)) == []
        decided = {(r.get("action"), r.get("decision")) for r in serve.audit_lines()}
        assert {("CreateExperiment", "allow"), ("UploadArtifact", "allow")} <= decided
    finally:
        serve.kill()
