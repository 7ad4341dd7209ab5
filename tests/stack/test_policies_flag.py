"""`cedarflow up --policies DIR`: every call is decided by the Cedar policies, and audited."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def test_policies_flag_turns_authorization_on(stack_factory) -> None:
    running = stack_factory(args=["--policies", str(REPO / "policies")]).start()
    alice = {"Authorization": f"Bearer {running.token('alice', ['vision'])}"}
    bob = {"Authorization": f"Bearer {running.token('bob', ['nlp'])}"}
    with httpx.Client(base_url=running.url, timeout=60) as http:
        created = http.post(
            "/api/2.0/mlflow/experiments/create", json={"name": "alice-only"}, headers=alice
        )
        assert created.status_code == 200, created.text
        experiment_id = created.json()["experiment_id"]
        params = {"experiment_id": experiment_id}
        assert http.get("/api/2.0/mlflow/experiments/get", params=params, headers=alice).is_success
        denied = http.get("/api/2.0/mlflow/experiments/get", params=params, headers=bob)
        assert denied.status_code == 403
        assert denied.json()["error_code"] == "PERMISSION_DENIED"
    audit = running.data_dir / "logs" / "audit.jsonl"
    records = [json.loads(line) for line in audit.read_text().splitlines() if line]
    assert len(records) >= 3
    assert running.stop() == 0
    assert "Traceback" not in running.stderr


def test_policies_flag_needs_a_directory(stack_factory, tmp_path) -> None:
    running = stack_factory(args=["--policies", str(tmp_path / "missing")])
    assert running.launch().wait(60) == 2
    lines = [line for line in running.stderr.splitlines() if line.strip()]
    assert lines == [f"cedarflow up: --policies {tmp_path / 'missing'} is not a directory"]
