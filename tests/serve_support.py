"""`cedarflow serve` against an AWS emulator on loopback: moto's server for DynamoDB, S3 and
Cognito user pools (RS256 tokens, `cognito:groups`, the pool's JWKS over HTTP)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx

from gateway.stack import processes
from gateway.stack.handler_tier import free_port

REGION = "us-east-1"
_START_TIMEOUT = 240.0
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


def wait_for_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=2, trust_env=False)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{what} did not answer at {url}")


def start_moto(log: Path) -> tuple[str, subprocess.Popen]:
    port = free_port()
    server = Path(sys.executable).with_name("moto_server")
    proc = processes.spawn(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **AWS_TEST_ENV},
        log_path=log,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url, proc, "moto_server")
    return url, proc


def aws_client(service: str, endpoint: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
    )


@dataclass(frozen=True)
class UserPool:
    """A moto Cognito user pool with an app client that allows USER_PASSWORD_AUTH."""

    endpoint: str
    pool_id: str
    client_id: str

    @property
    def issuer(self) -> str:
        # moto writes the real AWS host into `iss`: its JWKS is served on the emulator.
        return f"https://cognito-idp.{REGION}.amazonaws.com/{self.pool_id}"

    @property
    def jwks_url(self) -> str:
        return f"{self.endpoint}/{self.pool_id}/.well-known/jwks.json"

    @classmethod
    def create(cls, endpoint: str, groups: Sequence[str]) -> UserPool:
        cognito = aws_client("cognito-idp", endpoint)
        pool = cognito.create_user_pool(PoolName=f"cedarflow-{uuid.uuid4().hex[:6]}")
        pool_id = pool["UserPool"]["Id"]
        client = cognito.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName="mlflow",
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )
        for group in groups:
            cognito.create_group(UserPoolId=pool_id, GroupName=group)
        return cls(endpoint, pool_id, client["UserPoolClient"]["ClientId"])

    def add_user(self, name: str, groups: Sequence[str] = ()) -> str:
        """Create a confirmed user; returns the password."""
        cognito = aws_client("cognito-idp", self.endpoint)
        password = "Pw-" + secrets.token_urlsafe(12) + "9a!"
        cognito.admin_create_user(UserPoolId=self.pool_id, Username=name)
        cognito.admin_set_user_password(
            UserPoolId=self.pool_id, Username=name, Password=password, Permanent=True
        )
        for group in groups:
            cognito.admin_add_user_to_group(UserPoolId=self.pool_id, Username=name, GroupName=group)
        return password

    def sign_in(self, name: str, password: str) -> str:
        """The user's access token, through USER_PASSWORD_AUTH as a CLI would get it."""
        cognito = aws_client("cognito-idp", self.endpoint)
        result = cognito.initiate_auth(
            ClientId=self.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": name, "PASSWORD": password},
        )
        return result["AuthenticationResult"]["AccessToken"]

    def serve_args(self, jwks_url: str | None = None) -> list[str]:
        return [
            "--issuer", self.issuer,
            "--jwks-url", jwks_url or self.jwks_url,
            "--client-id", self.client_id,
        ]  # fmt: skip


def secret_env() -> dict[str, str]:
    return {
        "CEDARFLOW_IDENTITY_SECRET": secrets.token_hex(32),
        "CEDARFLOW_SESSION_SECRET": secrets.token_urlsafe(40),
    }


def cedarflow_command() -> list[str]:
    script = Path(sys.executable).parent / "cedarflow"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


class ServeProcess:
    """`cedarflow serve` in a subprocess on a free port, its stderr in a file."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str],
        log: Path,
        command: Sequence[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.args = list(args)
        self.env = env
        self.log = log
        self.command = list(command or cedarflow_command())
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self.url = ""

    @property
    def stdout_path(self) -> Path:
        return self.log.with_suffix(".stdout")

    def launch(self) -> ServeProcess:
        with open(self.log, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = processes.spawn(
                [*self.command, "serve", "--host", "127.0.0.1", "--port", "0", *self.args],
                env=self.env,
                stdout=out,
                stderr=err,
                cwd=self.cwd,
            )
        return self

    def audit_lines(self) -> list[dict]:
        """The audit records serve wrote on stdout (`--audit-log -`, the default)."""
        text = self.stdout_path.read_text() if self.stdout_path.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def start(self) -> ServeProcess:
        """Launch and wait for the "serving" log line; fails with serve's own stderr."""
        return self.launch().start_launched()

    def start_launched(self) -> ServeProcess:
        """Wait for the "serving" log line of a launched serve."""
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.stderr}")
            serving = [line for line in self.log_lines() if line.get("message") == "serving"]
            if serving:
                self.url = f"http://127.0.0.1:{serving[0]['port']}"
                return self
            time.sleep(0.2)
        self.kill()
        raise AssertionError(f"serve did not start: {self.stderr}")

    def wait(self, timeout: float = 120.0) -> int:
        return self.proc.wait(timeout)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 120.0) -> int:
        if self.proc.poll() is None:
            self.terminate()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            processes.stop(self.proc, timeout=5)

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def non_json_lines(self) -> list[str]:
        """Lines of stderr that are not one JSON object each."""
        found = []
        for text in self.stderr.splitlines():
            try:
                if isinstance(json.loads(text), dict):
                    continue
            except ValueError:
                pass
            found.append(text)
        return found

    def log_lines(self) -> list[dict]:
        lines = []
        for text in self.stderr.splitlines():
            try:
                value = json.loads(text)
            except ValueError:
                continue
            if isinstance(value, dict):
                lines.append(value)
        return lines


def create_table(endpoint: str, name: str) -> str:
    """The store's table on the emulator, created as the store defines it; its serve URI."""
    from store.dynamo.table import DynamoTable

    DynamoTable.from_uri(f"dynamodb://{endpoint.removeprefix('http://')}/{name}").ensure_table()
    return f"dynamodb:///{name}"
