"""The local DynamoDB launcher: persistence, locking, readiness, fallback, no orphans."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from gateway.stack.dynamodb_server import DynamoServer, LocalCredentials, _wait_for_answers
from gateway.stack.processes import StackError, is_alive


def _client(url: str):
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def _create_table(url: str, name: str) -> None:
    _client(url).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
    )


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_fixture_endpoint_answers_list_tables(dynalite_endpoint: str) -> None:
    assert dynalite_endpoint.startswith("http://127.0.0.1:")
    assert "TableNames" in _client(dynalite_endpoint).list_tables()


def test_data_survives_clean_stop_and_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "dynamodb"
    with DynamoServer(path) as server:
        assert server.kind == "dynalite" and server.persistent
        _create_table(server.url, "before-stop")
        pid = server.pid
    assert not is_alive(pid)

    server = DynamoServer(path)
    server.start()
    try:
        _create_table(server.url, "before-kill")
        _client(server.url).put_item(TableName="before-kill", Item={"pk": {"S": "k"}})
        os.kill(server.pid, signal.SIGKILL)
        assert _wait_gone(server.pid)
    finally:
        server.stop()

    with DynamoServer(path) as server:
        client = _client(server.url)
        assert sorted(client.list_tables()["TableNames"]) == ["before-kill", "before-stop"]
        assert client.get_item(TableName="before-kill", Key={"pk": {"S": "k"}})["Item"]


def test_second_server_on_same_directory_is_refused(tmp_path: Path) -> None:
    with DynamoServer(tmp_path / "dynamodb") as first:
        second = DynamoServer(tmp_path / "dynamodb")
        with pytest.raises(StackError, match="in use"):
            second.start()
        assert second.proc is None
        assert "TableNames" in _client(first.url).list_tables()


def test_moto_fallback_without_node_warns_that_nothing_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no node, no npm
    warning = io.StringIO()
    with DynamoServer(tmp_path / "dynamodb", warn=warning) as server:
        assert server.kind == "moto" and not server.persistent
        _create_table(server.url, "in-memory")
        pid = server.pid
    assert "NOTHING IS KEPT" in warning.getvalue()
    assert not is_alive(pid)


def test_server_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    script = (
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "from gateway.stack.dynamodb_server import DynamoServer\n"
        f"s = DynamoServer(Path({str(tmp_path / 'dynamodb')!r})); s.start()\n"
        "print(json.dumps({'pid': s.pid}), flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        child = json.loads(parent.stdout.readline())["pid"]
        assert is_alive(child)
        parent.kill()
        parent.wait(10)
        assert _wait_gone(child)
    finally:
        parent.kill()
        parent.wait(10)
        parent.stdout.close()


def _signed_headers(url: str, body: bytes, key: LocalCredentials) -> dict[str, str]:
    """Headers of a ListTables request signed as boto3 signs it (SigV4)."""
    request = AWSRequest(
        method="POST",
        url=f"{url}/",
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
        },
    )
    credentials = Credentials(key.access_key_id, key.secret_access_key)
    SigV4Auth(credentials, "dynamodb", "us-east-1").add_auth(request)
    return dict(request.headers)


def test_a_keyed_server_checks_the_whole_signature() -> None:
    key = LocalCredentials("stack-key-id", "stack-secret")
    with DynamoServer(None, allow_moto=False, credentials=key) as server:
        body = b'{"Limit": 5}'
        headers = _signed_headers(server.url, body, key)
        signed = httpx.post(server.url, headers=headers, content=body)
        # The same signature over another body (or a replay with edits) is refused.
        tampered = httpx.post(server.url, headers=headers, content=b'{"Limit": 6}')
        wrong_secret = _signed_headers(server.url, body, LocalCredentials("stack-key-id", "guess"))
        guessed = httpx.post(server.url, headers=wrong_secret, content=body)
        command_line = Path(f"/proc/{server.pid}/cmdline").read_bytes()
    assert signed.status_code == 200 and signed.json() == {"TableNames": []}
    for refused in (tampered, guessed):
        assert refused.status_code == 400
        assert refused.json()["__type"].endswith("#InvalidSignatureException")
    assert b"stack-secret" not in command_line


class _Probed(BaseHTTPRequestHandler):
    """A DynamoDB stand-in that knows no table and answers `answer` to DescribeTable; it never
    answers ListTables (dynalite reads its whole database for one)."""

    answer = ("ResourceNotFoundException", "Requested resource not found")
    targets: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        target = self.headers["X-Amz-Target"].rsplit(".", 1)[1]
        self.targets.append(target)
        if target != "DescribeTable":
            time.sleep(10)
            return
        kind, message = self.answer
        kind = f"com.amazonaws.dynamodb.v20120810#{kind}"
        body = json.dumps({"__type": kind, "message": message})
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def probed():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Probed)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Probed.targets = []
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _Running:
    def poll(self) -> None:
        return None


def test_readiness_asks_for_a_missing_table_never_for_the_list_of_tables(probed) -> None:
    _, url = probed
    deadline = time.monotonic() + 5
    assert _wait_for_answers(url, _Running(), deadline, None) is None
    assert _Probed.targets == ["DescribeTable"]


def test_a_server_that_refuses_the_key_is_not_ready(probed, monkeypatch) -> None:
    _, url = probed
    monkeypatch.setattr(_Probed, "answer", ("UnrecognizedClientException", "bad key"))
    problem = _wait_for_answers(url, _Running(), time.monotonic() + 1, None)
    assert problem is not None and "UnrecognizedClientException" in problem
    assert set(_Probed.targets) == {"DescribeTable"}
