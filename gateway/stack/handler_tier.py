"""The handler tier: MLflow's server app on our DynamoDB stores, on an internal loopback port.

It runs as `uvicorn store.handler.app:app` in a child process and refuses every call that does not
carry the gateway's signed identity header, except `GET /health`, which is how we know it is up.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from gateway.observe.jsonlog import relay_lines
from gateway.stack import processes
from gateway.stack.dynamodb_server import LocalCredentials
from gateway.stack.processes import StackError
from store.webhooks.networks import ALLOW_NETWORKS_ENV

_START_ATTEMPTS = 3
_READY_TIMEOUT = 180.0  # importing MLflow takes a while on a busy machine


@dataclass(frozen=True)
class HandlerTierSettings:
    store_uri: str  # dynamodb://127.0.0.1:PORT/TABLE, for tracking and the registry
    artifacts_dir: Path | str  # served as mlflow-artifacts:/ (a folder, or s3://bucket/prefix)
    identity_secret: str  # shared with the gateway (hex or text, store/handler/identity.py)
    page_token_secret: str  # signs page tokens (hex); empty = derived from the identity secret
    log_path: Path | None = None
    log_to_stderr: bool = False  # its output as JSON lines on this process's stderr
    dynamodb_credentials: LocalCredentials | None = None  # None = boto3's own chain as is
    workers: int = 1
    webhook_networks: tuple[str, ...] = ()  # CIDRs webhooks may also be delivered to

    @property
    def artifacts_destination(self) -> str:
        """Where MLflow's artifact proxy writes: an object store URI as given, else a folder."""
        if isinstance(self.artifacts_dir, str) and "://" in self.artifacts_dir:
            return self.artifacts_dir
        return str(Path(self.artifacts_dir).resolve())

    @property
    def local_artifacts(self) -> Path | None:
        if isinstance(self.artifacts_dir, str) and "://" in self.artifacts_dir:
            return None
        return Path(self.artifacts_dir)


def handler_env(
    settings: HandlerTierSettings, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment MLflow's server app reads its configuration from."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "_MLFLOW_SERVER_FILE_STORE": settings.store_uri,
            "_MLFLOW_SERVER_REGISTRY_STORE": settings.store_uri,
            "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
            "_MLFLOW_SERVER_ARTIFACT_DESTINATION": settings.artifacts_destination,
            "_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/",
            "_MLFLOW_SGI_NAME": "uvicorn",
            "_MLFLOW_SERVER_BOOT_ID": uuid.uuid4().hex,
            "_MLFLOW_IN_JOB_EXECUTOR": "false",
            # Jobs need a SQL backend and a worker pool: not part of this stack.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            # Not offered here: server-info then says so, and the UI hides the AI gateway.
            "MLFLOW_ENABLE_AI_GATEWAY": "false",
            "CEDARFLOW_IDENTITY_SECRET": settings.identity_secret,
            "PYTHONUNBUFFERED": "1",
            ALLOW_NETWORKS_ENV: ",".join(settings.webhook_networks),
        }
    )
    if settings.page_token_secret:
        env["CEDARFLOW_PAGE_TOKEN_SECRET"] = settings.page_token_secret
    env.pop("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", None)  # the guard's networks decide instead
    if settings.dynamodb_credentials is not None:  # in the environment: `ps` shows argv
        settings.dynamodb_credentials.apply_to(env)
    return env


class HandlerTier:
    """One handler-tier process; `start()` returns its base URL once /health answers."""

    def __init__(self, settings: HandlerTierSettings) -> None:
        self.settings = settings
        self.url = ""
        self.proc: subprocess.Popen | None = None
        self._relay = None  # the relay of its output to stderr, when asked for

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def __enter__(self) -> HandlerTier:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        if self.settings.local_artifacts is not None:
            self.settings.local_artifacts.mkdir(parents=True, exist_ok=True)
        problem = "no attempt"
        try:
            for _ in range(_START_ATTEMPTS):
                problem = self._spawn(free_port(), threading.Event())
                if problem is None:
                    return self.url
        except BaseException:
            self.stop()
            raise
        raise StackError(self._why_not(problem))

    def restart(self, stopping: threading.Event) -> None:
        """Start again on the same port (the gateway forwards there); StackError if it fails."""
        self.stop()
        try:
            problem = self._spawn(int(self.url.rsplit(":", 1)[1]), stopping)
        except BaseException:
            self.stop()
            raise
        if problem is not None:
            raise StackError(self._why_not(problem))

    def _spawn(self, port: int, stopping: threading.Event) -> str | None:
        """One start on `port`: None once /health answers, else why not (nothing left running)."""
        to_stderr = self.settings.log_to_stderr
        self.proc = processes.spawn(
            [sys.executable, "-m", "uvicorn", "store.handler.app:app",
             "--host", "127.0.0.1", "--port", str(port), "--workers", str(self.settings.workers),
             "--no-access-log", "--timeout-graceful-shutdown", "5"],
            env=handler_env(self.settings),
            log_path=self.settings.log_path,
            stdout=subprocess.PIPE if to_stderr else None,
            stderr=subprocess.STDOUT if to_stderr else None,
        )  # fmt: skip
        if to_stderr:
            self._relay = relay_lines(self.proc.stdout, source="handler")
        self.url = f"http://127.0.0.1:{port}"
        problem = _wait_for_health(self.url, self.proc, stopping)
        if problem is not None:
            self.stop()
        return problem

    def _why_not(self, problem: str) -> str:
        log = self.settings.log_path
        relay = self._relay
        tail = processes.last_line(log) if log else (relay.last if relay else "")
        where = f" (see {log})" if log else ""
        return f"handler tier did not start: {tail or problem}{where}"

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc)
            self.proc = None


def free_port() -> int:
    """A loopback port that was free a moment ago (callers retry if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_health(url: str, proc: subprocess.Popen, stopping: threading.Event) -> str | None:
    deadline = time.monotonic() + _READY_TIMEOUT
    problem = "no answer on /health"
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if stopping.is_set():
                return "the process is stopping"
            if proc.poll() is not None:
                return f"it exited with code {proc.returncode}"
            try:
                response = client.get(f"{url}/health")
                if response.status_code == 200:
                    return None
                problem = f"/health answered {response.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            stopping.wait(0.1)
    return problem
