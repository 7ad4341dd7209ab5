"""An unmodified MLflow client drives the real stack through the gateway."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

SCRIPT = Path(__file__).with_name("mlflow_script.py")


def test_training_script_runs_unchanged_through_the_gateway(stack) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "script-experiment"],
        env=stack.client_env("alice", ["vision"]),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    runs = out["run_ids"]
    # accuracy = 1 - lr; > 0.95 keeps lr 0.01 and 0.001, highest accuracy first.
    assert out["search"] == [runs["0.001"], runs["0.01"]]
    assert out["history"] == [[step, 1.0 / (step + 1) + 0.1] for step in range(5)]
    assert out["batch_history_len"] == 10
    assert out["params"] == {"lr": "0.1", "depth": "3", "optimizer": "adam", "batch_param": "x"}
    assert out["tags"] == {"team": "vision", "stage": "dev", "lr_tag": "0.1", "batch_tag": "y"}
    assert out["metrics"]["accuracy"] == pytest.approx(0.9)
    assert out["metrics"]["loss"] == pytest.approx(0.3)
    assert out["metrics"]["batch_metric"] == 9.0


def test_runs_are_attributed_to_the_token_user_not_the_client_claim(stack, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", stack.token("bob", ["vision"]))
    client = MlflowClient(tracking_uri=stack.url)
    experiment_id = client.create_experiment("attribution")
    run = client.create_run(experiment_id, tags={"mlflow.user": "mallory"})
    fetched = client.get_run(run.info.run_id)
    assert fetched.info.user_id == "bob"
    assert fetched.data.tags["mlflow.user"] == "bob"


def test_browser_signs_in_and_the_ui_shows_the_users_runs(stack, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", stack.token("dora", ["vision"]))
    client = MlflowClient(tracking_uri=stack.url)
    experiment_id = client.create_experiment("seen-in-the-ui")
    run_id = client.create_run(experiment_id, run_name="ui-run").info.run_id

    page_headers = {"Accept": "text/html,application/xhtml+xml"}
    with httpx.Client(base_url=stack.url, follow_redirects=True, timeout=60) as browser:
        login = browser.get("/", headers=page_headers)  # not signed in: the sign-in form
        assert login.status_code == 200 and "<form" in login.text
        fields = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', login.text))
        fields = {k: html.unescape(v) for k, v in fields.items()}
        signed_in = browser.post(login.url, data={**fields, "username": "dora", "groups": "vision"})
        assert signed_in.status_code == 200, signed_in.text[:500]
        assert signed_in.url.path == "/" and "<html" in signed_in.text.lower()

        # What the UI's own scripts then ask, with the session cookie.
        experiments = browser.get(
            "/ajax-api/2.0/mlflow/experiments/search", params={"max_results": 100}
        )
        assert experiments.status_code == 200, experiments.text
        names = [e["name"] for e in experiments.json()["experiments"]]
        assert "seen-in-the-ui" in names
        runs = browser.post(
            "/ajax-api/2.0/mlflow/runs/search",
            json={"experiment_ids": [experiment_id]},
            headers={"Origin": stack.url},
        )
        assert runs.status_code == 200, runs.text
        assert [r["info"]["run_id"] for r in runs.json()["runs"]] == [run_id]


def test_call_without_token_gets_401_mlflow_json(stack) -> None:
    response = httpx.get(
        f"{stack.url}/api/2.0/mlflow/experiments/search", params={"max_results": 5}, timeout=30
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error_code"] == "UNAUTHENTICATED"


def test_call_with_forged_token_gets_401(stack) -> None:
    token = stack.token("alice")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    response = httpx.get(
        f"{stack.url}/api/2.0/mlflow/experiments/search",
        params={"max_results": 5},
        headers={"Authorization": f"Bearer {forged}"},
        timeout=30,
    )
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"


def test_handler_tier_port_refuses_calls_that_bypass_the_gateway(stack) -> None:
    token = stack.token("alice", ["admins"])
    for headers in ({}, {"Authorization": f"Bearer {token}"}, {"X-Cedarflow-Identity": "v1.x.y"}):
        response = httpx.post(
            f"{stack.handler_url}/api/2.0/mlflow/experiments/create",
            json={"name": "bypass"},
            headers=headers,
            timeout=30,
        )
        assert response.status_code == 401, headers
        assert response.json()["error_code"] == "UNAUTHENTICATED"


def test_cedarflow_token_command_prints_a_working_token(stack) -> None:
    cedarflow = Path(sys.executable).parent / "cedarflow"
    result = subprocess.run(
        [str(cedarflow), "token", "--user", "carol", "--groups", "vision,nlp",
         "--data-dir", str(stack.data_dir)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    response = httpx.get(
        f"{stack.url}/api/2.0/mlflow/experiments/search",
        params={"max_results": 5},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_artifacts_go_through_the_gateway_into_the_data_dir(stack, monkeypatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", stack.token("alice", ["vision"]))
    mlflow.set_tracking_uri(stack.url)
    try:
        client = MlflowClient(tracking_uri=stack.url)
        experiment_id = client.create_experiment("artifacts")
        run = client.create_run(experiment_id)
        client.log_text(run.info.run_id, "hello from the gateway", "notes/hello.txt")
        assert [f.path for f in client.list_artifacts(run.info.run_id, "notes")] == [
            "notes/hello.txt"
        ]
        uri = f"runs:/{run.info.run_id}/notes/hello.txt"
        assert mlflow.artifacts.load_text(uri) == "hello from the gateway"
    finally:
        mlflow.set_tracking_uri(None)
    stored = list((stack.data_dir / "artifacts").rglob("hello.txt"))
    assert [p.read_text() for p in stored] == ["hello from the gateway"]
