"""An AWS emulator on loopback (ministack: CloudFormation, DynamoDB, S3, Cognito with OAuth)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.stack.processes import spawn

_START_TIMEOUT_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ministack_command() -> list[str]:
    script = Path(sys.executable).with_name("ministack")
    return [str(script)] if script.exists() else [shutil.which("ministack") or "ministack"]


@pytest.fixture(scope="session")
def ministack_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a ministack bound to 127.0.0.1 only, its state in a temporary directory."""
    state = tmp_path_factory.mktemp("ministack")
    port = _free_port()
    env = {
        **os.environ,
        # Its defaults listen on 0.0.0.0 and open an MQTT listener on 0.0.0.0:8883.
        "IOT_MTLS_ENABLED": "0",
        "BIND_HOST": "127.0.0.1",
        "MINISTACK_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "STATE_DIR": str(state),
        "S3_DATA_DIR": str(state),
    }
    log = state / "ministack.log"
    with open(log, "wb") as out:
        proc = spawn(_ministack_command(), env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(proc, url, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


def _wait_until_healthy(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ministack exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/_ministack/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"ministack did not start: {log.read_text()[-2000:]}")
