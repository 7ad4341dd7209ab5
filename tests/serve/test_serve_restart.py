"""A killed handler tier comes back by itself: /readyz says it is down meanwhile, calls get JSON
502/503, and the restart is one JSON log line."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest
from process_support import processes_mentioning, wait_until_gone
from serve_support import ServeProcess


def _handler_pids(marker: str) -> list[int]:
    return [
        pid
        for pid in processes_mentioning(marker, environment=True)
        if b"store.handler.app" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def _poll(condition, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    return None


@pytest.mark.slow
def test_a_killed_handler_tier_is_restarted_and_readiness_follows(
    serve_env, table, user_pool, bucket, tmp_path
) -> None:
    marker = f"serve-{uuid.uuid4().hex}"
    user = f"restart-{marker[-6:]}"
    password = user_pool.add_user(user, ["vision"])
    args = ["--table", table, "--artifacts", f"s3://{bucket}/restart", "--workers", "1"]
    args += user_pool.serve_args()
    env = {**serve_env, "CEDARFLOW_TEST_MARKER": marker}
    serve = ServeProcess(args, env, tmp_path / "serve.log").start()
    try:
        headers = {"Authorization": f"Bearer {user_pool.sign_in(user, password)}"}
        search = f"{serve.url}/api/2.0/mlflow/experiments/search"
        query = {"max_results": 10}
        assert httpx.get(search, params=query, headers=headers, timeout=60).status_code == 200
        assert httpx.get(f"{serve.url}/readyz", timeout=30).status_code == 200
        [handler] = _handler_pids(marker)

        os.kill(handler, signal.SIGKILL)
        down = _poll(lambda: _readiness(serve.url, want=503))
        assert down is not None and down["upstream"] is False
        during = httpx.get(search, params=query, headers=headers, timeout=60)
        assert during.status_code in (502, 503), during.text
        assert during.headers["content-type"].startswith("application/json")
        assert during.json()["error_code"]

        assert _poll(lambda: _readiness(serve.url, want=200)), serve.stderr
        after = httpx.get(search, params=query, headers=headers, timeout=60)
        assert after.status_code == 200, after.text
        [restart] = [line for line in serve.log_lines() if line.get("child") == "handler tier"]
        assert restart["level"] == "warning"
        assert restart["ended"] == "was killed by SIGKILL"
        assert restart["delay_seconds"] == 0.5
        assert serve.non_json_lines() == []
        [again] = _handler_pids(marker)
        assert again != handler
        assert serve.stop() == 0, serve.stderr
        assert wait_until_gone(processes_mentioning(marker, environment=True)) == []
    finally:
        serve.kill()


def _readiness(url: str, want: int) -> dict | None:
    try:
        answer = httpx.get(f"{url}/readyz", timeout=30)
    except httpx.TransportError:
        return None
    return answer.json() if answer.status_code == want else None
