"""Two `cedarflow serve` instances on one table and one bucket behave as one service: what is
written through A reads through B, a grant or revoke through A applies on B within the
documented bound, and a policy file change applies on each instance."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from serve_support import ServeProcess, cedarflow_command, secret_env

from gateway.authz.policies import PACKAGED_POLICIES
from gateway.stack.serve import BINDINGS_TTL_SECONDS

SCRIPT = Path(__file__).with_name("client_script.py")
# What a call may take on a busy machine, on top of the bound itself.
_CALL_ALLOWANCE_SECONDS = 10.0


@dataclass(frozen=True)
class Service:
    a: ServeProcess
    b: ServeProcess
    policies: Path
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def service(moto_endpoint, user_pool, bucket, tmp_path_factory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("two-instances")
    policies = root / "policies"
    shutil.copytree(PACKAGED_POLICIES, policies)
    table = f"dynamodb:///shared-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CEDARFLOW_", "AWS_"))}
    env |= {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint,
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
        "CEDARFLOW_TABLE": table,
        "CEDARFLOW_ARTIFACTS": f"s3://{bucket}/shared",
        "CEDARFLOW_POLICIES": str(policies),
        "CEDARFLOW_WORKERS": "1",
        **secret_env(),  # the same secrets on both, as behind one load balancer
    }
    # The platform engineer's two commands: create the table, check it.
    for action in ("create", "check"):
        done = subprocess.run(
            [*cedarflow_command(), "table", action, "--table", table],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
    args = user_pool.serve_args()
    suffix = uuid.uuid4().hex[:6]
    users = {"alice": ["vision"], "bob": ["nlp"]}
    tokens = {
        name: user_pool.sign_in(f"{name}-{suffix}", user_pool.add_user(f"{name}-{suffix}", groups))
        for name, groups in users.items()
    }
    a = ServeProcess(args, env, root / "a.log").launch()
    b = ServeProcess(args, env, root / "b.log").launch()
    try:
        a.start_launched()
        b.start_launched()
        yield Service(a, b, policies, tokens)
    finally:
        for instance in (a, b):
            assert instance.stop() == 0, instance.stderr
            instance.kill()


def _client(script_args: list[str], url: str, token: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    env |= {"MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_TOKEN": token}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *script_args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _get_experiment(url: str, token: str, experiment_id: str) -> int:
    return httpx.get(
        f"{url}/api/2.0/mlflow/experiments/get",
        params={"experiment_id": experiment_id},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    ).status_code


def _poll(condition, bound: float) -> bool:
    """Ask until `condition()` holds or `bound` seconds have passed."""
    deadline = time.monotonic() + bound
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)


@pytest.fixture(scope="module")
def written(service) -> dict:
    return _client(
        ["write", f"shared-{uuid.uuid4().hex[:6]}"], service.a.url, service.tokens["alice"]
    )


def test_what_a_writes_b_reads(service, written):
    read = _client(
        ["read", written["run_id"], written["model_uri"]], service.b.url, service.tokens["alice"]
    )
    assert read["params"] == {"alpha": "0.5"}
    assert read["history"] == [1.0, 0.5, pytest.approx(1 / 3)]
    assert read["artifacts"] == ["docs/notes.txt"]
    assert read["notes"] == "trained on the emulator"
    assert read["prediction"] == pytest.approx(7.0)


def test_a_grant_and_a_revoke_through_a_apply_on_b_within_the_bound(service, written):
    experiment = written["experiment_id"]
    bob, alice = service.tokens["bob"], service.tokens["alice"]
    assert _get_experiment(service.b.url, bob, experiment) == 403
    bound = BINDINGS_TTL_SECONDS + _CALL_ALLOWANCE_SECONDS

    binding = {"resource_type": "experiment", "resource_id": experiment, "group": "nlp"}
    granted = httpx.post(
        f"{service.a.url}/api/3.0/cedarflow/permissions/grant",
        json={**binding, "role": "reader"},
        headers={"Authorization": f"Bearer {alice}"},
        timeout=60,
    )
    assert granted.status_code == 200, granted.text
    assert _poll(lambda: _get_experiment(service.b.url, bob, experiment) == 200, bound)

    revoked = httpx.post(
        f"{service.a.url}/api/3.0/cedarflow/permissions/revoke",
        json=binding,
        headers={"Authorization": f"Bearer {alice}"},
        timeout=60,
    )
    assert revoked.status_code == 200, revoked.text
    assert _poll(lambda: _get_experiment(service.b.url, bob, experiment) == 403, bound)


def test_a_policy_file_change_applies_on_each_instance(service, written):
    experiment = written["experiment_id"]
    alice = service.tokens["alice"]
    for instance in (service.a, service.b):
        assert _get_experiment(instance.url, alice, experiment) == 200
    # Alice reads as the experiment's manager: take GetExperiment out of every role but admins.
    removed = {}
    for path in sorted(service.policies.glob("1*_experiment_*.cedar")):
        removed[path] = path.read_text()
        path.write_text(removed[path].replace('Action::"GetExperiment",', ""))
    try:
        assert any(text != path.read_text() for path, text in removed.items())
        for instance in (service.a, service.b):
            assert _poll(lambda i=instance: _get_experiment(i.url, alice, experiment) == 403, 30)
    finally:
        for path, text in removed.items():
            path.write_text(text)
    for instance in (service.a, service.b):
        assert _poll(lambda i=instance: _get_experiment(i.url, alice, experiment) == 200, 30)


def _handler_tiers(instance: ServeProcess) -> list[int]:
    """The handler-tier processes `instance` started (its children running the store's app)."""
    found = subprocess.run(
        ["ps", "-o", "pid=,args=", "--ppid", str(instance.proc.pid)],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.splitlines()
    return [int(line.split()[0]) for line in found if "store.handler.app:app" in line]


def test_each_instance_answers_through_its_own_handler_tier(service, written):
    tiers = [_handler_tiers(instance) for instance in (service.a, service.b)]
    assert all(len(pids) == 1 for pids in tiers), tiers
    assert tiers[0] != tiers[1]
    run_reads = "/api/2.0/mlflow/runs/get"
    before = {
        name: sum(r.get("path") == run_reads for r in instance.audit_lines())
        for name, instance in (("a", service.a), ("b", service.b))
    }
    got = httpx.get(
        f"{service.b.url}{run_reads}",
        params={"run_id": written["run_id"]},
        headers={"Authorization": f"Bearer {service.tokens['alice']}"},
        timeout=60,
    )
    assert got.status_code == 200, got.text
    assert got.json()["run"]["data"]["params"] == [{"key": "alpha", "value": "0.5"}]
    after = {
        name: sum(r.get("path") == run_reads for r in instance.audit_lines())
        for name, instance in (("a", service.a), ("b", service.b))
    }
    assert after == {"a": before["a"], "b": before["b"] + 1}
