"""The dev identity provider signs anyone in as anyone: it runs only on a loopback `--host` and
only when no `--issuer` is given; a non-loopback `--host` without `--issuer` is refused at start."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from process_support import processes_mentioning

from gateway import cli
from gateway.authn.oauth import random_token
from gateway.devidp.provider import DEV_CLIENT_ID, DevIdentityProvider
from gateway.stack.supervisor import StackConfig

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=10"


@contextmanager
def outside_issuer(key_dir: Path) -> Iterator[DevIdentityProvider]:
    """An issuer of our own (not the stack's) whose JWKS is served over HTTP on loopback."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    issuer = DevIdentityProvider(key_dir, f"http://127.0.0.1:{server.server_port}/pool")
    jwks = json.dumps(issuer.jwks()).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            found = self.path == "/pool/.well-known/jwks.json"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(jwks) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(jwks)

        def log_message(self, *args) -> None:
            pass

    server.RequestHandlerClass = Jwks
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _wait_for_banner(stack) -> str:
    for _ in range(300):  # the banner follows stack.json by a moment
        if "Stop with Ctrl-C." in stack.stdout:
            break
        time.sleep(0.1)
    return stack.stdout


def test_with_an_issuer_nobody_signs_in_through_the_dev_provider(stack_factory, tmp_path, capsys):
    with outside_issuer(tmp_path / "outside") as outside:
        stack = stack_factory(
            tmp_path / "data", args=["--issuer", outside.issuer, "--client-id", DEV_CLIENT_ID]
        ).start()
        verifier = random_token(48)
        with httpx.Client(base_url=stack.url, trust_env=False, timeout=30) as client:
            # Two unauthenticated requests used to be enough for an `admins` token.
            sign_in = client.post(
                "/devidp/oauth2/authorize",
                data={
                    "client_id": DEV_CLIENT_ID,
                    "redirect_uri": f"{stack.url}/oauth2/callback",
                    "code_challenge": create_s256_code_challenge(verifier),
                    "username": "mallory",
                    "groups": "admins",
                },
            )
            token = client.post(
                "/devidp/oauth2/token",
                data={"grant_type": "authorization_code", "client_id": DEV_CLIENT_ID,
                      "code": "x", "code_verifier": verifier},
            )  # fmt: skip
            page = client.get("/devidp/oauth2/authorize")
            keys = client.get("/devidp/.well-known/jwks.json")
            # A token signed with the data directory's dev key, as `cedarflow token` would.
            dev_key = DevIdentityProvider(stack.data_dir / "devidp", f"{stack.url}/devidp")
            with_dev_token = client.get(SEARCH, headers=_bearer(dev_key.mint("alice", ["admins"])))
            with_issuer_token = client.get(SEARCH, headers=_bearer(outside.mint("alice")))
    for answer in (sign_in, token, page, keys):
        assert answer.status_code == 404, answer.text
        assert answer.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert with_dev_token.status_code == 401
    assert with_issuer_token.status_code == 200, with_issuer_token.text
    assert stack.info["dev_idp"] is False and stack.info["issuers"] == [outside.issuer]

    capsys.readouterr()
    assert cli.main(["token", "--user", "alice", "--data-dir", str(stack.data_dir)]) == 1
    refusal = capsys.readouterr().err
    assert "runs without the dev identity provider" in refusal and outside.issuer in refusal
    banner = _wait_for_banner(stack)
    assert "no dev identity provider" in banner and "sign in as anyone" not in banner


def test_the_banner_says_anyone_can_sign_in_as_anyone(stack) -> None:
    port = stack.url.rsplit(":", 1)[1]
    lines = _wait_for_banner(stack).splitlines()
    assert any(f"anyone who can reach port {port} can sign in as anyone" in s for s in lines)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "", "192.0.2.1"], ids=["any-ipv4", "any-ipv6", "empty", "test-net"]
)
def test_a_non_loopback_host_without_an_issuer_is_refused_at_once(stack_factory, tmp_path, host):
    stack = stack_factory(tmp_path / "data", args=["--host", host])
    assert stack.launch().wait(120) == 1
    [line] = [line for line in stack.stderr.splitlines() if line.strip()]
    assert "--issuer" in line and "not a loopback address" in line
    # Refused before anything: no data directory, no local DynamoDB, no handler tier.
    assert not stack.data_dir.exists()
    assert processes_mentioning(str(stack.data_dir), environment=True) == []


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost", "LocalHost"])
def test_loopback_hosts_run_the_dev_provider(host) -> None:
    config = StackConfig(host=host)
    assert config.runs_dev_idp and config.sign_in_problem() is None


def test_any_issuer_turns_the_dev_provider_off_and_frees_the_host() -> None:
    from gateway.config import IssuerConfig

    issuer = IssuerConfig("https://idp.example", "https://idp.example/jwks", ("web",))
    config = StackConfig(host="0.0.0.0", issuers=(issuer,))
    assert not config.runs_dev_idp and config.sign_in_problem() is None
    alone = StackConfig(dev_idp=False)
    assert "needs at least one --issuer" in (alone.sign_in_problem() or "")
