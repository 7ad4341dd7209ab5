"""Data survives a clean stop and a SIGKILL of `cedarflow up`; no process outlives the stack."""

from __future__ import annotations

import os
import signal

from mlflow import MlflowClient
from process_support import wait_until_gone


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


def test_stack_stops_with_one_line_when_its_database_dies(stack_factory) -> None:
    running = stack_factory().start()
    pids = running.pids
    os.kill(running.info["child_pids"][0], signal.SIGKILL)  # the local DynamoDB
    assert running.proc.wait(60) == 1
    lines = [line for line in running.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("cedarflow: the local DynamoDB exited")
    assert wait_until_gone(pids) == []
