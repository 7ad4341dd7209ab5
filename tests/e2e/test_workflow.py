"""The whole MLflow 3 workflow, unmodified, through the gateway of a running `cedarflow up`."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("workflow_script.py")


@pytest.mark.slow
def test_train_register_alias_load_prompt_and_trace(stack, tmp_path):
    env = stack.client_env("alice", ["data-science"])
    env["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
    suffix = uuid.uuid4().hex[:8]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), suffix],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["predictions"] == [0, 0, 0, 1, 1, 1]
    assert seen["version"] == seen["alias_version"] == "1"
    assert seen["logged_model_status"] == "READY"
    assert seen["logged_model_source_run"] == seen["run_id"]
    assert seen["notes"] == "trained on six points"
    assert seen["run_artifacts"] == ["docs/notes.txt"]
    assert seen["prompt"] == "Hello Ada!"
    assert seen["traces"] == [{"name": "add", "spans": ["add"]}]
    assert seen["ui_models"] == [seen["logged_model_id"]]
    assert seen["ui_traces"] == 1 and seen["ui_trace_spans"] == ["add"]
    # Nothing of it was written next to the client: artifacts live in the stack's data directory.
    assert not (tmp_path / "mlruns").exists()
    assert any((stack.data_dir / "artifacts").rglob("MLmodel"))
