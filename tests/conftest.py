"""Shared fixtures that start real processes (local DynamoDB, the whole stack)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

# MLflow's telemetry thread edits os.environ while the client reads it; keep it off in tests.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import httpx  # noqa: E402
import pytest  # noqa: E402
from process_support import wait_until_gone  # noqa: E402

from gateway.stack.dynamodb_server import DynamoServer  # noqa: E402
from gateway.stack.processes import spawn  # noqa: E402

_STACK_START_TIMEOUT = 240.0


@pytest.fixture(scope="session")
def dynalite_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL ("http://127.0.0.1:PORT") of a fresh in-memory dynalite for this test session."""
    log = tmp_path_factory.mktemp("dynalite") / "dynalite.log"
    with DynamoServer(None, log_path=log, allow_moto=False) as server:
        yield server.url


class StackProcess:
    """`cedarflow up` in a subprocess on a free port, as a user would run it."""

    def __init__(self, data_dir: Path, args: Sequence[str] = (), env: dict | None = None) -> None:
        self.data_dir = data_dir
        self.args = list(args)
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.stdout_path = data_dir.parent / f"{data_dir.name}.stdout"
        self.stderr_path = data_dir.parent / f"{data_dir.name}.stderr"

    @property
    def url(self) -> str:
        return self.info["url"]

    @property
    def handler_url(self) -> str:
        return self.info["handler_url"]

    @property
    def pids(self) -> list[int]:
        """The CLI and every child it started."""
        return [self.proc.pid, *self.info["child_pids"]]

    def launch(self) -> subprocess.Popen:
        """Start the process without waiting for it to be ready."""
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            # spawn(): the stack goes down with this test process, whatever kills it.
            self.proc = spawn(
                [*cedarflow_command(), "up", "--data-dir", str(self.data_dir), "--port", "0",
                 *self.args],
                stdout=out,
                stderr=err,
                env=self.env,
            )  # fmt: skip
        return self.proc

    def start(self) -> StackProcess:
        """Start and wait until the gateway answers; fails with the stack's own stderr."""
        self.launch()
        deadline = time.monotonic() + _STACK_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"cedarflow up exited {self.proc.returncode}: {self.stderr}")
            info = _read_json(self.data_dir / "stack.json")
            if info and info.get("pid") == self.proc.pid:
                self.info = info
                break
            time.sleep(0.1)
        else:
            self.kill()
            raise AssertionError(f"cedarflow up did not become ready: {self.stderr}")
        assert httpx.get(f"{self.url}/healthz", timeout=10).status_code == 200
        return self

    def token(self, user: str, groups: Sequence[str] = (), **options) -> str:
        """A dev access token for `user` (options: machine_client_id, ttl)."""
        from gateway.devidp.provider import DevIdentityProvider

        provider = DevIdentityProvider(self.data_dir / "devidp", self.info["issuer"])
        return provider.mint(user, tuple(groups), **options)

    def client_env(self, user: str, groups: Sequence[str] = ()) -> dict[str, str]:
        """The environment an MLflow client of this stack runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_TRACKING_URI"] = self.url
        env["MLFLOW_TRACKING_TOKEN"] = self.token(user, groups)
        return env

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (what Ctrl-C or a service manager sends) and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""


def cedarflow_command() -> list[str]:
    """The installed `cedarflow` console script of this environment."""
    script = Path(sys.executable).parent / "cedarflow"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    """One running stack for the session: `.url`, `.data_dir`, `.token(user, groups)`."""
    running = StackProcess(tmp_path_factory.mktemp("stack") / "data").start()
    try:
        yield running
    finally:
        try:
            running.stop()
        finally:
            running.kill()


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[Callable[..., StackProcess]]:
    """Makes stacks of one test (not started); all of them are stopped at its end."""
    yield from _stacks(tmp_path)


@pytest.fixture(scope="module")
def module_stack_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., StackProcess]]:
    """Makes stacks shared by the tests of one module (not started), stopped at its end."""
    yield from _stacks(tmp_path_factory.mktemp("module-stack"))


def _stacks(root: Path) -> Iterator[Callable[..., StackProcess]]:
    made: list[StackProcess] = []

    def make(data_dir: Path | None = None, args: Sequence[str] = (), env=None) -> StackProcess:
        made.append(StackProcess(data_dir or root / "data", args, env))
        return made[-1]

    yield make
    for running in made:
        if running.proc is not None:
            with_children = running.pids if running.info else [running.proc.pid]
            running.kill()
            for pid in wait_until_gone(with_children, timeout=10):
                os.kill(pid, signal.SIGKILL)
