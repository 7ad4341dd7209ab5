"""`cedarflow serve` that cannot start says why in one line, exits non-zero and leaves nothing
running; one that starts while the identity provider is unreachable waits for it (readyz)."""

from __future__ import annotations

import http.server
import shutil
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from process_support import processes_mentioning, wait_until_gone
from serve_support import ServeProcess, aws_client

from gateway.authz.policies import PACKAGED_POLICIES
from gateway.stack.handler_tier import free_port


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def _refused(args, env, tmp_path: Path) -> tuple[ServeProcess, str]:
    """Run serve expecting it to refuse; returns it and its one line. Nothing may be left."""
    marker = f"serve-{uuid.uuid4().hex}"
    serve = ServeProcess(args, {**env, "CEDARFLOW_TEST_MARKER": marker}, tmp_path / "serve.log")
    code = serve.launch().wait(120)
    assert code != 0, serve.stderr
    assert wait_until_gone(processes_mentioning(marker, environment=True)) == []
    return serve, _one_line(serve.stderr)


@pytest.mark.parametrize("missing", ["CEDARFLOW_IDENTITY_SECRET", "CEDARFLOW_SESSION_SECRET"])
def test_a_missing_secret_is_refused(missing, serve_env, table, user_pool, bucket, tmp_path):
    env = {k: v for k, v in serve_env.items() if k != missing}
    args = ["--table", table, "--artifacts", f"s3://{bucket}/a", *user_pool.serve_args()]
    _, line = _refused(args, env, tmp_path)
    assert missing in line and "not set" in line


def test_a_secret_on_the_command_line_is_no_option(serve_env, table, user_pool, tmp_path):
    args = ["--table", table, "--artifacts", str(tmp_path), *user_pool.serve_args()]
    _, line = _refused([*args, "--identity-secret", "x" * 40], serve_env, tmp_path)
    assert "unrecognized arguments: --identity-secret" in line


def test_a_missing_table_names_table_create(serve_env, user_pool, bucket, tmp_path):
    table = f"dynamodb:///missing-{uuid.uuid4().hex[:8]}"
    args = ["--table", table, "--artifacts", f"s3://{bucket}/a", *user_pool.serve_args()]
    _, line = _refused(args, serve_env, tmp_path)
    assert "does not exist" in line and f"cedarflow table create --table {table}" in line


def test_a_table_of_another_schema_is_refused(serve_env, moto_endpoint, user_pool, tmp_path):
    name = f"other-{uuid.uuid4().hex[:8]}"
    aws_client("dynamodb", moto_endpoint).create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    table = f"dynamodb:///{name}"
    args = ["--table", table, "--artifacts", str(tmp_path / "a"), *user_pool.serve_args()]
    _, line = _refused(args, serve_env, tmp_path)
    assert table in line and "cedarflow table create" in line


def test_settings_come_from_the_environment(serve_env, user_pool, tmp_path):
    env = {**serve_env, "CEDARFLOW_TABLE": "dynamodb:///nowhere-table"}
    env |= {"CEDARFLOW_ARTIFACTS": str(tmp_path / "a"), "CEDARFLOW_ISSUER": user_pool.issuer}
    env |= {"CEDARFLOW_JWKS_URL": user_pool.jwks_url, "CEDARFLOW_CLIENT_ID": user_pool.client_id}
    _, line = _refused([], env, tmp_path)
    assert "nowhere-table does not exist" in line
    assert "cedarflow table create --table dynamodb:///nowhere-table" in line


def test_a_policy_set_that_fails_validation_stops_serve(serve_env, table, user_pool, tmp_path):
    policies = tmp_path / "policies"
    shutil.copytree(PACKAGED_POLICIES, policies)
    broken = 'permit (principal, action == Action::"Nope", resource);'
    (policies / "99_broken.cedar").write_text(broken)
    args = ["--table", table, "--artifacts", str(tmp_path / "a"), "--policies", str(policies)]
    _, line = _refused([*args, *user_pool.serve_args()], serve_env, tmp_path)
    assert "policy set" in line and "99_broken.cedar" in line


class _Jwks(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


def test_unreachable_jwks_does_not_stop_serve_and_readyz_waits_for_it(
    serve_env, table, user_pool, tmp_path
):
    port = free_port()  # nothing listens there yet
    jwks_url = f"http://127.0.0.1:{port}/jwks.json"
    args = ["--table", table, "--artifacts", str(tmp_path / "a"), "--workers", "1"]
    serve = ServeProcess([*args, *user_pool.serve_args(jwks_url)], serve_env, tmp_path / "s.log")
    serve.start()
    try:
        assert httpx.get(f"{serve.url}/healthz", timeout=10).status_code == 200
        ready = httpx.get(f"{serve.url}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["issuers"] == {user_pool.issuer: False}
        assert ready.json()["table"] is True and ready.json()["upstream"] is True

        _Jwks.body = httpx.get(user_pool.jwks_url, timeout=10).content
        keys = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Jwks)
        threading.Thread(target=keys.serve_forever, daemon=True).start()
        try:
            # The JWKS is asked again after its refresh cool-down (5 s by default).
            statuses = []
            for _ in range(120):
                statuses.append(httpx.get(f"{serve.url}/readyz", timeout=30).status_code)
                if statuses[-1] == 200:
                    break
                threading.Event().wait(0.5)
            assert statuses[-1] == 200, statuses
        finally:
            keys.shutdown()
            keys.server_close()
        # Production never has the dev identity provider, whatever the path.
        assert httpx.get(f"{serve.url}/devidp/login", timeout=30).status_code == 404
    finally:
        assert serve.stop() == 0, serve.stderr
    assert serve.non_json_lines() == []
    assert any(line["logger"] == "handler" for line in serve.log_lines())
