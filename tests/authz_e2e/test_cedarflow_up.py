"""`cedarflow up --policies DIR`: the stack as users run it decides every call."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
API = "/api/2.0/mlflow"


def test_cedarflow_up_with_policies_decides_and_audits(stack_factory, tmp_path):
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    stack = stack_factory(args=["--policies", str(policies)]).start()

    def client(user: str, group: str) -> httpx.Client:
        token = stack.token(user, [group])
        return httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {token}"})

    with client("alice", "vision") as alice, client("bob", "nlp") as bob:
        created = alice.post(f"{API}/experiments/create", json={"name": "up-exp"})
        assert created.status_code == 200, created.text
        experiment_id = created.json()["experiment_id"]
        assert alice.get(
            f"{API}/experiments/get", params={"experiment_id": experiment_id}
        ).is_success
        denied = bob.get(f"{API}/experiments/get", params={"experiment_id": experiment_id})
        assert denied.status_code == 403
        assert denied.json()["error_code"] == "PERMISSION_DENIED"
        listed = bob.get(f"{API}/experiments/search", params={"max_results": 10}).json()
        assert "up-exp" not in json.dumps(listed)
    audit = stack.data_dir / "logs" / "audit.jsonl"
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert {"allow", "deny"} <= {r.get("decision") for r in lines}
    with client("ada", "admins") as admin:
        assert "cedarflow_decisions_total" in admin.get("/metrics").text
    assert httpx.get(f"{stack.url}/metrics").status_code == 401
