"""Request bodies through `cedarflow up`: a limit per route, 413 before reading past it.

One stack for the module, started as a user would with `--max-body-mb 1 --max-large-body-mb 2`
(JSON calls 1 MiB, bulk calls 2 MiB, sign-in forms 64 KiB). Requests are written on raw
sockets where the point is what the gateway does before the client has finished sending.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

MIB = 1024 * 1024
JSON_LIMIT = 1 * MIB
LARGE_LIMIT = 2 * MIB
FORM_LIMIT = 64 * 1024
API = "/api/2.0/mlflow"
# A client that never finishes sending: the answer must come before the end of the body.
NO_ANSWER_SECONDS = 60


@pytest.fixture(scope="module")
def stack(module_stack_factory):
    return module_stack_factory(args=["--max-body-mb", "1", "--max-large-body-mb", "2"]).start()


@pytest.fixture(scope="module")
def token(stack) -> str:
    return stack.token("bodies", ["bodies-team"])


@pytest.fixture(scope="module")
def experiment_id(stack, token) -> str:
    with _client(stack, token) as http:
        created = http.post(f"{API}/experiments/create", json={"name": "body-limits"})
        assert created.status_code == 200, created.text
        return created.json()["experiment_id"]


@pytest.fixture(scope="module")
def run_id(stack, token, experiment_id) -> str:
    with _client(stack, token) as http:
        run = http.post(f"{API}/runs/create", json={"experiment_id": experiment_id})
        assert run.status_code == 200, run.text
        return run.json()["run"]["info"]["run_id"]


# (path, authenticated, content type, limit): every kind of place the gateway reads a body
BOUNDED = [
    ("/devidp/oauth2/token", False, "application/x-www-form-urlencoded", FORM_LIMIT),
    ("/devidp/oauth2/authorize", False, "application/x-www-form-urlencoded", FORM_LIMIT),
    ("/logout", False, "application/x-www-form-urlencoded", FORM_LIMIT),
    (f"{API}/runs/log-parameter", True, "application/json", JSON_LIMIT),
    ("/api/3.0/mlflow/users/permissions/grant", True, "application/json", JSON_LIMIT),
    ("/api/3.0/cedarflow/permissions/grant", True, "application/json", JSON_LIMIT),
    (f"{API}/runs/log-batch", True, "application/json", LARGE_LIMIT),
    ("/graphql", True, "application/json", LARGE_LIMIT),
    ("/v1/traces", True, "application/x-protobuf", LARGE_LIMIT),
]


@pytest.mark.parametrize(("path", "authenticated", "content_type", "limit"), BOUNDED)
def test_an_oversized_content_length_is_refused_before_any_body_is_sent(
    stack, token, experiment_id, path, authenticated, content_type, limit
):
    headers = {"Content-Type": content_type, "Content-Length": str(200 * MIB)}
    if authenticated:
        headers |= _credentials(token, experiment_id)
    response = _exchange(stack.url, "POST", path, headers, body=())  # not a byte of the body
    _assert_too_large(response, limit)


# /logout never reads a body: it answers at once, whatever is sent
@pytest.mark.parametrize(
    ("path", "authenticated", "content_type", "limit"), [b for b in BOUNDED if b[0] != "/logout"]
)
def test_a_chunked_body_is_cut_off_at_the_limit(
    stack, token, experiment_id, path, authenticated, content_type, limit
):
    headers = {"Content-Type": content_type, "Transfer-Encoding": "chunked"}
    if authenticated:
        headers |= _credentials(token, experiment_id)
    # One limit's worth and a little more, and the body never ends (no final chunk).
    chunks = _chunks(limit + 256 * 1024, 64 * 1024)
    response = _exchange(stack.url, "POST", path, headers, body=chunks, finish=False)
    _assert_too_large(response, limit)


def test_gateway_memory_stays_flat_under_huge_bodies(stack, token, run_id):
    peak_before = _peak_rss(stack.proc.pid)
    # 200 MiB to the dev identity provider, with no credentials at all, sent to the end.
    form = {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(200 * MIB)}
    sent = _exchange(stack.url, "POST", "/devidp/oauth2/token", form, _chunks(200 * MIB, MIB))
    _assert_too_large(sent, FORM_LIMIT)
    # 100 MiB of JSON, chunked, to an authenticated MLflow call.
    call = {
        "Content-Type": "application/json",
        "Transfer-Encoding": "chunked",
        "Authorization": f"Bearer {token}",
    }
    body = _json_chunks({"run_id": run_id, "key": "huge"}, "value", 100 * MIB)
    sent = _exchange(stack.url, "POST", f"{API}/runs/log-parameter", call, body)
    _assert_too_large(sent, JSON_LIMIT)
    grown = _peak_rss(stack.proc.pid) - peak_before
    assert grown < 40 * MIB, f"the gateway's peak memory grew by {grown // MIB} MiB"


def test_the_flags_set_the_limits(stack, token, run_id):
    with _client(stack, token) as http:
        under = {"run_id": run_id, "key": "under", "value": "v" * (JSON_LIMIT // 2)}
        over = {"run_id": run_id, "key": "over", "value": "v" * (JSON_LIMIT + MIB // 2)}
        answered = http.post(f"{API}/runs/log-parameter", json=under)
        assert answered.status_code == 200, answered.text  # read and forwarded whole
        _assert_too_large(http.post(f"{API}/runs/log-parameter", json=over), JSON_LIMIT)
        # log-batch has the larger limit: 1.5 MiB is read and forwarded
        batch = {"run_id": run_id, "params": [{"key": "k", "value": "v" * (3 * MIB // 2)}]}
        answered = http.post(f"{API}/runs/log-batch", json=batch)
        assert answered.status_code == 200, answered.text
        batch["params"][0]["value"] = "v" * (LARGE_LIMIT + MIB)
        _assert_too_large(http.post(f"{API}/runs/log-batch", json=batch), LARGE_LIMIT)


def test_a_chunked_call_reaches_mlflow_whole(stack, token, run_id):
    headers = {
        "Content-Type": "application/json",
        "Transfer-Encoding": "chunked",
        "Authorization": f"Bearer {token}",
    }
    body = json.dumps({"run_id": run_id, "key": "chunked", "value": "arrived"}).encode()
    pieces = [body[:7], body[7:20], body[20:]]  # split inside the JSON, as a client may
    response = _exchange(stack.url, "POST", f"{API}/runs/log-parameter", headers, pieces)
    assert response.status == 200, response.body
    with _client(stack, token) as http:
        run = http.get(f"{API}/runs/get", params={"run_id": run_id}).json()["run"]
    params = {p["key"]: p["value"] for p in run["data"].get("params", [])}
    assert params["chunked"] == "arrived"


def test_a_large_artifact_upload_still_streams(stack, token, run_id, tmp_path, monkeypatch):
    """Artifact uploads are not limited: 24 MiB (over both limits) up and back down."""
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    client = MlflowClient(tracking_uri=stack.url)
    local = tmp_path / "weights.bin"
    local.write_bytes(hashlib.sha256(b"seed").digest() * (24 * MIB // 32))
    client.log_artifact(run_id, str(local), artifact_path="model")
    back = Path(client.download_artifacts(run_id, "model/weights.bin", str(tmp_path / "down")))
    assert back.read_bytes() == local.read_bytes()
    # The same through a chunked PUT, as a streaming client sends it.
    experiment_id = client.get_run(run_id).info.experiment_id
    target = f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/chunked.bin"
    with _client(stack, token) as http:
        put = http.put(target, content=_chunks(8 * MIB, MIB))
        assert put.status_code == 200, put.text
        fetched = http.get(target)
    assert fetched.content == b"x" * (8 * MIB)


# ---- support --------------------------------------------------------------------------------


class Answer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body

    def json(self) -> dict:
        return json.loads(self.body)


def _exchange(
    url: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Iterable[bytes],
    *,
    finish: bool = True,
) -> Answer:
    """Send a request on a raw socket and read the answer.

    A chunked body is framed here; with `finish=False` its final chunk is never sent, so an
    answer proves the server did not wait for the end. Sending stops if the server stops
    reading; the answer is read whatever happened while sending.
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    chunked = headers.get("Transfer-Encoding") == "chunked"
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    with socket.create_connection((host, int(port)), timeout=NO_ANSWER_SECONDS) as sock:
        sock.sendall(head.encode("latin-1"))
        try:
            for piece in body:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked and finish:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and stopped reading: the answer is what counts
        response = http.client.HTTPResponse(sock)
        response.begin()
        return Answer(response.status, response.read())


def _credentials(token: str, experiment_id: str) -> dict[str, str]:
    # OTLP names its experiment in a header; other calls ignore it
    return {"Authorization": f"Bearer {token}", "X-MLflow-Experiment-Id": experiment_id}


def _assert_too_large(response, limit: int) -> None:
    status = getattr(response, "status", None) or response.status_code
    assert status == 413, (status, response.json() if status < 500 else response)
    error = response.json()
    assert error["error_code"] == "INVALID_PARAMETER_VALUE"
    shown = f"{limit // MIB} MiB" if limit >= MIB else f"{limit // 1024} KiB"
    assert shown in error["message"]


def _chunks(total: int, size: int) -> Iterator[bytes]:
    piece = b"x" * size
    sent = 0
    while sent < total:
        yield piece[: total - sent]
        sent += len(piece)


def _json_chunks(fields: dict, name: str, size: int) -> Iterator[bytes]:
    """A JSON object whose field `name` is a string of `size` bytes, in 1 MiB pieces."""
    head = json.dumps(fields)[:-1].encode() + f', "{name}": "'.encode()
    yield head
    yield from _chunks(size, MIB)
    yield b'"}'


def _peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def _client(stack, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {token}"}, timeout=120
    )
