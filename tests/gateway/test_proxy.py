"""Forwarding: what reaches the handler tier, streaming both ways, upstream failures."""

from __future__ import annotations

import hashlib
import threading

from gw_support import ARTIFACT_UPLOAD, SECRET, SLOW, free_port
from starlette.requests import Request

from gateway.proxy import forwardable_request_headers
from store.handler.identity import IDENTITY_HEADER, verify_identity_claims

IDENTITY_CLAIMING = {
    "X-Forwarded-User": "root",
    "X-Forwarded-Email": "root@example.com",
    "X-Forwarded-Groups": "admins",
    "Remote-User": "root",
    "X-Remote-User": "root",
    "X-Cedarflow-Identity": "v1.forged.forged",
    "X-Cedarflow-Anything": "mine",
    "X-Mlflow-Guardrail-Bypass": "1",
    "X-MLflow-Authorization": "Basic cm9vdDpwdw==",
    "X-Forwarded-For": "10.9.9.9",
    "X-Real-IP": "10.9.9.9",
    "Forwarded": "for=10.9.9.9",
    "Origin": "https://elsewhere.example",
    "Proxy-Authorization": "Basic eDp5",
}


def test_identity_headers_are_stripped_and_the_signed_one_added(gateway, echo_upstream, alices):
    echo, _ = echo_upstream
    token = gateway.idp.mint("alice", ["ds-team"])
    with gateway.client() as client:
        response = client.post(
            "/api/2.0/mlflow/runs/create?x=1&y=%2F",
            headers={
                "Authorization": f"Bearer {token}",
                "Connection": "keep-alive, X-Hop",
                "X-Hop": "drop me",
                "X-Keep": "kept",
                **IDENTITY_CLAIMING,
            },
            json={"experiment_id": alices.experiment_id},
        )
    assert response.status_code == 200
    assert response.headers["set-cookie"] == "a=1"
    received = echo.received[-1]
    names = [name for name, _ in received["headers"]]
    headers = dict(received["headers"])
    assert "authorization" not in names
    assert "x-hop" not in names
    assert headers["x-keep"] == "kept"
    replaced_by_the_gateway = {"x-forwarded-for", IDENTITY_HEADER.lower()}
    for name in IDENTITY_CLAIMING:
        if name.lower() not in replaced_by_the_gateway:
            assert name.lower() not in names, name
    assert names.count("x-forwarded-for") == 1
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert names.count(IDENTITY_HEADER.lower()) == 1
    assert headers["host"] == echo_upstream[1].removeprefix("http://")
    principal = verify_identity_claims(
        headers[IDENTITY_HEADER.lower()],
        "POST",
        "/api/2.0/mlflow/runs/create",
        SECRET,
        query="x=1&y=%2F",
    ).principal
    assert principal.username == "alice"
    assert received["query"] == b"x=1&y=%2F"
    assert received["body"] == f'{{"experiment_id":"{alices.experiment_id}"}}'.encode()


def test_encoded_paths_reach_the_handler_unchanged(gateway, echo_upstream, alices):
    echo, _ = echo_upstream
    token = gateway.idp.mint("alice")
    path = f"{ARTIFACT_UPLOAD}/{alices.experiment_id}/{alices.run_id}/artifacts/a%20b%2Bc.txt"
    with gateway.client(headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get(path).status_code == 200
    received = echo.received[-1]
    assert received["raw_path"] == path.encode()
    value = dict(received["headers"])[IDENTITY_HEADER.lower()]
    verify_identity_claims(value, "GET", received["path"], SECRET)


def test_a_get_with_a_json_body_keeps_its_body(gateway, echo_upstream, alices):
    echo, _ = echo_upstream
    token = gateway.idp.mint("alice")
    body = f'{{"run_id": "{alices.run_id}"}}'.encode()
    with gateway.client(headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.request("GET", "/api/2.0/mlflow/runs/get", content=body).status_code == 200
    assert echo.received[-1]["body"] == body


def test_a_large_upload_streams_through(gateway, echo_upstream, alices):
    echo, _ = echo_upstream
    token = gateway.idp.mint("alice")
    chunk = b"u" * 65536
    chunks = 1024  # 64 MiB
    arrived_while_sending = threading.Event()

    def body():
        yield chunk
        # The upstream sees the first chunk before the client has sent the rest.
        if echo.first_chunk_seen.wait(30):
            arrived_while_sending.set()
        for _ in range(chunks - 1):
            yield chunk

    with gateway.client(headers={"Authorization": f"Bearer {token}"}) as client:
        target = f"{ARTIFACT_UPLOAD}/{alices.experiment_id}/{alices.run_id}/artifacts/big.bin"
        response = client.put(target, content=body())
    assert response.json() == {"received": len(chunk) * chunks}
    assert arrived_while_sending.is_set()


def test_a_large_download_streams_through(gateway, echo_upstream, alices):
    echo, _ = echo_upstream
    token = gateway.idp.mint("alice")
    size = 64 * 1024 * 1024
    digest = hashlib.sha256()
    received = 0
    with (
        gateway.client(headers={"Authorization": f"Bearer {token}"}) as client,
        client.stream("GET", f"{_artifact(alices, 'big.bin')}?size={size}") as response,
    ):
        assert response.status_code == 200
        for part in response.iter_bytes():
            if received == 0:
                # The upstream holds the rest back until the first bytes got here.
                echo.client_read_first_chunk.set()
            received += len(part)
            digest.update(part)
    assert received == size
    expected = hashlib.sha256(b"x" * size).hexdigest()
    assert digest.hexdigest() == expected


def test_upstream_down_is_a_502_in_mlflow_json(start_gateway):
    gateway = start_gateway(f"http://127.0.0.1:{free_port()}")
    token = gateway.idp.mint("alice")
    with gateway.client(headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.get("/api/2.0/mlflow/experiments/search")
        ready = client.get("/readyz")
    assert response.status_code == 502
    assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert ready.status_code == 503
    assert ready.json()["upstream"] is False


def test_upstream_timeout_is_a_504_in_mlflow_json(start_gateway, echo_upstream):
    gateway = start_gateway(echo_upstream[1], upstream_timeout_seconds=0.5)
    token = gateway.idp.mint("alice")
    with gateway.client(headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.get(SLOW)
    assert response.status_code == 504
    assert response.json()["error_code"] == "DEADLINE_EXCEEDED"


def test_an_upstream_cookie_is_never_replayed_for_another_caller(gateway, echo_upstream):
    # The handler tier answers every call with Set-Cookie: a=1 (passed back to that caller).
    echo, _ = echo_upstream
    alice, bob = gateway.idp.mint("alice", ["ds-team"]), gateway.idp.mint("bob", ["nlp"])
    with gateway.client() as client:
        first = client.get("/api/2.0/mlflow/experiments/search", headers=_bearer(alice))
        assert first.headers["set-cookie"] == "a=1"
    with gateway.client() as client:  # a new client: sends no cookie of its own
        client.get("/api/2.0/mlflow/experiments/search", headers=_bearer(bob))
    assert "cookie" not in dict(echo.received[-1]["headers"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _artifact(owned, name: str) -> str:
    return f"{ARTIFACT_UPLOAD}/{owned.experiment_id}/{owned.run_id}/artifacts/{name}"


def test_a_chunked_body_is_never_forwarded_with_the_clients_content_length():
    # Servers refuse such requests; if one got through, the hops must still agree on framing.
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/2.0/mlflow/runs/create",
        "headers": [(b"content-length", b"4"), (b"transfer-encoding", b"chunked"), (b"x-a", b"1")],
    }
    assert forwardable_request_headers(Request(scope)) == [("x-a", "1")]


def test_idle_upstream_connections_are_let_go_before_the_handler_tier_closes_them():
    """uvicorn (the handler tier) closes a connection idle for its keep-alive timeout; a call
    sent on it at that moment fails ("Can not write request body": a 502). The gateway's pool
    drops idle connections sooner, so it never sends on one the handler tier is closing."""
    import asyncio

    import uvicorn

    from gateway.proxy import Forwarder

    async def idle_limit() -> float:
        forwarder = Forwarder("http://127.0.0.1:9", SECRET, timeout_seconds=5)
        try:
            return forwarder._session_now().connector._keepalive_timeout
        finally:
            await forwarder.aclose()

    assert asyncio.run(idle_limit()) < uvicorn.Config(app=None).timeout_keep_alive
