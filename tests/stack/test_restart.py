"""Data survives a clean stop and a SIGKILL of `cedarflow up`; no process outlives the stack; a
child that dies is restarted, with its data, while the gateway answers JSON errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

import httpx
import pytest
from mlflow import MlflowClient
from process_support import group_members, wait_until_gone

_OUTAGE_STATUSES = {502, 503, 504}


def _client(stack, monkeypatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", stack.token("alice", ["vision"]))
    return MlflowClient(tracking_uri=stack.url)


def test_data_survives_clean_stop_and_sigkill_without_orphans(stack_factory, monkeypatch) -> None:
    first = stack_factory().start()
    client = _client(first, monkeypatch)
    experiment_id = client.create_experiment("survives-restarts")
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "lr", "0.1")
    client.log_metric(run.info.run_id, "loss", 0.5, step=1)
    pids = first.pids

    assert first.stop() == 0
    assert wait_until_gone(pids) == []
    assert not (first.data_dir / "stack.json").exists()

    second = stack_factory(first.data_dir).start()
    client = _client(second, monkeypatch)
    assert client.get_experiment_by_name("survives-restarts").experiment_id == experiment_id
    assert client.get_run(run.info.run_id).data.params == {"lr": "0.1"}
    client.log_metric(run.info.run_id, "loss", 0.25, step=2)
    pids = second.pids

    os.kill(second.proc.pid, signal.SIGKILL)
    second.proc.wait(30)
    assert wait_until_gone(pids) == []

    third = stack_factory(first.data_dir).start()
    client = _client(third, monkeypatch)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.25)]
    pids = third.pids
    assert third.stop() == 0
    assert wait_until_gone(pids) == []


class Load:
    """Threads that log a metric per call until stopped; every answer is kept."""

    def __init__(self, stack, run_id: str, threads: int = 4) -> None:
        self.api = f"{stack.url}/api/2.0/mlflow"
        self.headers = {"Authorization": f"Bearer {stack.token('alice', ['vision'])}"}
        self.run_id = run_id
        self.answers: list[tuple[int, str, bytes]] = []  # status, content type, body
        self.acknowledged: list[tuple[int, int]] = []  # (thread, step) answered 200
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._log, args=(n,)) for n in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        for thread in self._threads:
            thread.join(120)

    def _log(self, number: int) -> None:
        with httpx.Client(timeout=90, headers=self.headers) as client:
            step = 0
            while not self._done.is_set():
                step += 1
                metric = {"key": f"load-{number}", "value": step, "timestamp": 1, "step": step}
                body = {"run_id": self.run_id, "metrics": [metric]}
                try:
                    answer = client.post(f"{self.api}/runs/log-batch", json=body)
                except httpx.TransportError as exc:  # the gateway itself went away
                    answer = httpx.Response(0, content=repr(exc).encode())
                with self._lock:
                    kind = answer.headers.get("content-type", "")
                    self.answers.append((answer.status_code, kind, answer.content))
                    if answer.status_code == 200:
                        self.acknowledged.append((number, step))
                self._done.wait(0.05)

    def successes_since(self, index: int) -> int:
        with self._lock:
            return sum(1 for status, _, _ in self.answers[index:] if status == 200)

    def failures(self) -> list[tuple[int, str, bytes]]:
        with self._lock:
            return [answer for answer in self.answers if answer[0] != 200]


def _wait_for(condition, timeout: float = 180.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _assert_outage_answers_are_json(failures: list[tuple[int, str, bytes]]) -> None:
    for status, kind, body in failures:
        assert status in _OUTAGE_STATUSES, (status, body[:300])
        assert kind.startswith("application/json"), (status, kind, body[:300])
        assert json.loads(body)["error_code"], body[:300]


def _assert_all_logged(stack, monkeypatch, load: Load) -> None:
    client = _client(stack, monkeypatch)
    for number in {number for number, _ in load.acknowledged}:
        steps = {m.step for m in client.get_metric_history(load.run_id, f"load-{number}")}
        acknowledged = {step for n, step in load.acknowledged if n == number}
        assert acknowledged <= steps, sorted(acknowledged - steps)


def _bind(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def _current_pids(stack) -> list[int]:
    info = json.loads((stack.data_dir / "stack.json").read_text())
    return [stack.proc.pid, *info["child_pids"]]


@pytest.mark.slow
def test_a_killed_handler_tier_is_restarted_while_calls_get_json_errors(
    stack_factory, monkeypatch
) -> None:
    running = stack_factory().start()
    client = _client(running, monkeypatch)
    run = client.create_run(client.create_experiment("handler-restart"))
    handler_pid = running.info["child_pids"][1]
    with Load(running, run.info.run_id) as load:
        assert _wait_for(lambda: load.successes_since(0) > 10)
        os.kill(handler_pid, signal.SIGKILL)
        assert _wait_for(lambda: any(a[0] != 200 for a in load.answers)), "no call saw the outage"
        seen = len(load.answers)
        assert _wait_for(lambda: load.successes_since(seen) > 10), running.stderr
    _assert_outage_answers_are_json(load.failures())
    _assert_all_logged(running, monkeypatch, load)
    assert "the handler tier was killed by SIGKILL; restarting it in 0.5 s" in running.stderr
    pids = _current_pids(running)
    assert handler_pid not in pids
    assert running.stop() == 0
    assert wait_until_gone(pids) == []


@pytest.mark.slow
def test_a_killed_local_dynamodb_comes_back_with_its_data(stack_factory, monkeypatch) -> None:
    running = stack_factory().start()
    client = _client(running, monkeypatch)
    experiment_id = client.create_experiment("dynamodb-restart")
    before = client.create_run(experiment_id)
    client.log_param(before.info.run_id, "written", "before the kill")
    dynamodb_pid = running.info["child_pids"][0]
    with Load(running, before.info.run_id) as load:
        assert _wait_for(lambda: load.successes_since(0) > 10)
        os.kill(dynamodb_pid, signal.SIGKILL)
        assert _wait_for(lambda: "the local DynamoDB was killed by SIGKILL" in running.stderr)
        seen = len(load.answers)
        assert _wait_for(lambda: load.successes_since(seen) > 10), running.stderr
    _assert_outage_answers_are_json(load.failures())
    assert client.get_run(before.info.run_id).data.params == {"written": "before the kill"}
    _assert_all_logged(running, monkeypatch, load)
    pids = _current_pids(running)
    assert dynamodb_pid not in pids
    assert running.stop() == 0
    assert wait_until_gone(pids) == []


@pytest.mark.slow
def test_sigterm_while_a_child_cannot_restart_stops_the_stack_cleanly(stack_factory) -> None:
    running = stack_factory().start()
    handler_pid = running.info["child_pids"][1]
    port = int(running.handler_url.rsplit(":", 1)[1])
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # The stack paused, so that no restart can bind the port before the squatter listens on it:
    # a restart's server binds at once but listens only once its workers have imported MLflow.
    os.kill(running.proc.pid, signal.SIGSTOP)
    try:
        try:
            server_and_workers = group_members(handler_pid)
            os.killpg(handler_pid, signal.SIGKILL)
            assert wait_until_gone(server_and_workers) == []
            # Its port taken: every restart fails at start (the kernel may hold it a moment).
            assert _wait_for(lambda: _bind(squatter, port), timeout=5)
            squatter.listen()
        finally:
            os.kill(running.proc.pid, signal.SIGCONT)
        assert _wait_for(lambda: "restarting it in 2 s" in running.stderr), running.stderr
        answer = httpx.get(f"{running.url}/readyz", timeout=30)
        assert answer.status_code == 503 and answer.json()["upstream"] is False
        pids = _current_pids(running)
        assert running.stop() == 0, running.stderr
        assert wait_until_gone(pids) == []
    finally:
        squatter.close()
    lines = [line for line in running.stderr.splitlines() if "restarting it in" in line]
    assert [line.rsplit(" in ", 1)[1] for line in lines[:3]] == ["0.5 s", "1 s", "2 s"]
