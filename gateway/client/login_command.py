"""`cedarflow login --url GATEWAY`: sign in once in a browser; MLflow clients then use the result.

Authorization code with PKCE and a loopback redirect (RFC 8252): a one-request HTTP server on
127.0.0.1 receives the code, which is redeemed at the token endpoint the gateway names. The
refresh token goes to the credentials file (mode 0600); the `cedarflow` MLflow auth plugin turns
it into fresh access tokens.
"""

from __future__ import annotations

import argparse
import hmac
import http.server
import os
import sys
import threading
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt

from gateway.authn.oauth import IdentityProviderError, OAuthClient, random_token
from gateway.client.credentials import (
    ClientAuthError,
    ClientDiscovery,
    CredentialStore,
    StoredLogin,
    discover,
    gateway_key,
)

CALLBACK_PATH = "/callback"
DEFAULT_TIMEOUT_SECONDS = 300


def add_login_command(subparsers) -> argparse.ArgumentParser:
    """Add `login` to the `cedarflow` command's subparsers."""
    login = subparsers.add_parser(
        "login",
        help="sign in to a Cedarflow gateway for the MLflow client (stores a refresh token)",
        description="Sign in to a Cedarflow gateway in a browser and keep a refresh token in a "
        "file only you can read. Then: export MLFLOW_TRACKING_URI=GATEWAY "
        "MLFLOW_TRACKING_AUTH=cedarflow.",
    )
    login.set_defaults(command="login", run=run_login)
    login.add_argument(
        "--url",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="the gateway's URL (default: $MLFLOW_TRACKING_URI)",
    )
    login.add_argument(
        "--no-browser",
        dest="browser",
        action="store_false",
        help="only print the sign-in URL (open it on this machine yourself)",
    )
    login.add_argument(
        "--credentials",
        type=Path,
        default=None,
        help="credentials file (default ~/.config/cedarflow/credentials.json)",
    )
    login.add_argument(
        "--timeout",
        type=int,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"seconds to wait for the sign-in (default {DEFAULT_TIMEOUT_SECONDS})",
    )
    return login


def run_login(args: argparse.Namespace) -> int:
    if not args.url:
        print("cedarflow login: --url is required (or set MLFLOW_TRACKING_URI)", file=sys.stderr)
        return 2

    def open_url(url: str) -> None:
        print(f"Sign in at:\n\n    {url}\n", flush=True)
        if args.browser:
            webbrowser.open(url)

    try:
        stored = login(
            args.url,
            open_url=open_url,
            store=CredentialStore(args.credentials),
            timeout=args.timeout,
        )
    except ClientAuthError as exc:
        print(f"cedarflow login: {exc}", file=sys.stderr)
        return 1
    who = f" as {stored.username}" if stored.username else ""
    print(f"Signed in to {stored.gateway}{who}. For MLflow:")
    print(f"    export MLFLOW_TRACKING_URI={stored.gateway}")
    print("    export MLFLOW_TRACKING_AUTH=cedarflow")
    return 0


def login(
    gateway_url: str,
    *,
    open_url: Callable[[str], None],
    store: CredentialStore,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> StoredLogin:
    """Run the whole sign-in and store its refresh token; `open_url` shows the IdP's page."""
    with httpx.Client(timeout=15.0) as http:
        discovery = discover(gateway_url, http)
    if not discovery.client_id:
        raise ClientAuthError(
            "this gateway offers no public client for command-line sign-in; "
            "use a machine client (CEDARFLOW_CLIENT_ID / CEDARFLOW_CLIENT_SECRET)"
        )
    client = OAuthClient(discovery.client_id, timeout=15.0)
    with _LoopbackReceiver(discovery.redirect_port) as receiver:
        redirect_uri = f"http://{discovery.redirect_host}:{receiver.port}{CALLBACK_PATH}"
        state, nonce, verifier = random_token(), random_token(), random_token(48)
        url = client.authorization_url(
            discovery.authorization_endpoint,
            redirect_uri=redirect_uri,
            scopes=discovery.scopes,
            state=state,
            nonce=nonce,
            code_verifier=verifier,
        )
        open_url(url)
        answer = receiver.wait(timeout)
    if answer is None:
        raise ClientAuthError("no answer from the browser in time")
    if "error" in answer:
        raise ClientAuthError(f"the identity provider said: {answer['error']}")
    if not hmac.compare_digest(answer.get("state", ""), state) or "code" not in answer:
        raise ClientAuthError("the browser's answer does not match this sign-in")
    try:
        tokens = client.redeem_code(
            discovery.token_endpoint, answer["code"], redirect_uri, verifier
        )
    except IdentityProviderError as exc:
        raise ClientAuthError(f"the code was not redeemed: {exc}") from None
    username = _check_id_token(tokens.id_token, discovery, nonce)
    if tokens.refresh_token is None:
        raise ClientAuthError("the identity provider issued no refresh token")
    stored = StoredLogin(
        gateway=gateway_key(gateway_url),
        issuer=discovery.issuer,
        token_endpoint=discovery.token_endpoint,
        client_id=discovery.client_id,
        refresh_token=tokens.refresh_token,
        username=username,
    )
    store.save(stored)
    return stored


def _check_id_token(id_token: object, discovery: ClientDiscovery, nonce: str) -> str | None:
    """The user name of the ID token, after checking it answers this sign-in.

    Received straight from the token endpoint, so its signature is left to the gateway (OIDC
    Core 3.1.3.7); issuer, audience and nonce must match.
    """
    if not isinstance(id_token, str):
        return None
    try:
        claims = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise ClientAuthError("the identity provider returned an unreadable ID token") from None
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if (
        claims.get("iss") != discovery.issuer
        or discovery.client_id not in audiences
        or not hmac.compare_digest(str(claims.get("nonce", "")), nonce)
    ):
        raise ClientAuthError("the ID token does not belong to this sign-in")
    name = claims.get("cognito:username") or claims.get("username") or claims.get("email")
    return name if isinstance(name, str) else None


@dataclass
class _Answer:
    params: dict[str, str] | None = None


class _LoopbackReceiver:
    """An HTTP server on 127.0.0.1 that takes the IdP's redirect (one answer) in a thread."""

    def __init__(self, port: int) -> None:
        self._answer = _Answer()
        self._received = threading.Event()
        handler = _callback_handler(self._answer, self._received)
        self._server = http.server.HTTPServer(("127.0.0.1", port), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> _LoopbackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def wait(self, timeout: float) -> dict[str, str] | None:
        self._received.wait(timeout)
        return self._answer.params


def _callback_handler(answer: _Answer, received: threading.Event):
    class CallbackHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            parts = urlsplit(self.path)
            if parts.path != CALLBACK_PATH or received.is_set():
                self.send_error(404)
                return
            answer.params = {k: v[0] for k, v in parse_qs(parts.query).items()}
            body = b"<!doctype html><p>Signed in. You can close this tab.</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            received.set()

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            return  # quiet: the terminal shows our own messages only

    return CallbackHandler
