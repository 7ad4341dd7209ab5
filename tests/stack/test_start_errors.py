"""A stack that cannot start says why in one line, exits non-zero and leaves nothing running."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import httpx
from process_support import processes_mentioning, wait_until_gone


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_second_stack_on_same_data_dir_is_refused(stack_factory) -> None:
    first = stack_factory().start()
    second = stack_factory(first.data_dir)
    assert second.launch().wait(120) == 1
    line = _one_line(second.stderr)
    assert "in use by another cedarflow stack" in line and str(first.proc.pid) in line
    # The first stack is untouched and still serves; nothing new runs on its directory.
    assert set(processes_mentioning(str(first.data_dir))) <= set(first.pids)
    assert httpx.get(f"{first.url}/healthz", timeout=10).status_code == 200
    assert first.stop() == 0


def test_port_taken_is_one_line_and_nothing_is_left(stack_factory, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        stack = stack_factory(tmp_path / "data", args=["--port", str(port)])
        assert stack.launch().wait(120) == 1
    line = _one_line(stack.stderr)
    assert f"127.0.0.1:{port}" in line and "address already in use" in line
    assert processes_mentioning(str(stack.data_dir)) == []
    assert not (stack.data_dir / "stack.json").exists()


def test_no_local_dynamodb_possible_is_one_line(stack_factory, tmp_path: Path) -> None:
    # No node on PATH, and a `moto` that cannot be imported: nothing can serve DynamoDB.
    fake = tmp_path / "site"
    (fake / "moto").mkdir(parents=True)
    (fake / "moto" / "__init__.py").write_text("raise ImportError('moto is not installed')\n")
    env = dict(os.environ, PATH=str(Path(sys.executable).parent), PYTHONPATH=str(fake))
    stack = stack_factory(tmp_path / "data", env=env)
    assert stack.launch().wait(120) == 1
    line = _one_line(stack.stderr)
    assert "Node.js is not installed and moto is not installed" in line
    assert processes_mentioning(str(stack.data_dir)) == []


def test_without_node_moto_runs_in_memory_with_a_loud_warning(stack_factory, tmp_path) -> None:
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))
    stack = stack_factory(tmp_path / "data", env=env).start()
    assert stack.info["dynamodb"] == "moto"
    assert "NOTHING IS KEPT" in stack.stderr
    assert "in-memory DynamoDB" in stack.stdout
    pids = stack.pids
    assert stack.stop() == 0
    assert wait_until_gone(pids) == []
