"""The whole stack with authorization on: dynalite, the handler tier, the gateway.

The gateway runs in a thread of the test process with a copy of `policies/` in a temporary
directory (so a test can edit a policy file under the running gateway) and its audit log in
a file the tests read.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.devidp.provider import DevIdentityProvider
from gateway.stack.handler_tier import HandlerTier, HandlerTierSettings

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "gateway"))
from gw_support import ServerThread, free_port  # noqa: E402
from mlflow_calls import mlflow_client_of  # noqa: E402

TABLE = "cedarflow"


@dataclass
class AuthzStack:
    url: str
    handler_url: str
    store_uri: str
    policies_dir: Path
    audit_path: Path
    identity_secret: bytes
    dev_idp: DevIdentityProvider
    pipeline: object  # gateway.pipeline.Pipeline (its authorizer, its facts: the resolver)

    def token(self, user: str, groups: Sequence[str] = ()) -> str:
        return self.dev_idp.mint(user, tuple(groups))

    def http(self, user: str, groups: Sequence[str] = ()) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token(user, groups)}"},
            timeout=60,
        )

    @contextlib.contextmanager
    def as_user(self, user: str, groups: Sequence[str] = ()) -> Iterator[None]:
        """Point MLflow's client (fluent API and MlflowClient) at the gateway as `user`."""
        with mlflow_client_of(self.url, self.token(user, groups)):
            yield

    def audit_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.audit_path.read_text().splitlines() if line]


@pytest.fixture(scope="session")
def authz_stack(
    dynalite_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthzStack]:
    root = tmp_path_factory.mktemp("authz")
    policies = root / "policies"
    shutil.copytree(REPO / "policies", policies)
    store_uri = f"dynamodb://{dynalite_endpoint.removeprefix('http://')}/{TABLE}"
    identity = secrets.token_hex(32)
    settings = HandlerTierSettings(
        store_uri=store_uri,
        artifacts_dir=root / "artifacts",
        identity_secret=identity,
        page_token_secret=secrets.token_hex(32),
        log_path=root / "handler.log",
    )
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    with HandlerTier(settings) as handler:
        config = GatewayConfig(
            upstream_url=handler.url,
            identity_secret=bytes.fromhex(identity),
            public_url=public_url,
            dev_idp_dir=root / "devidp",
            policies_dir=policies,
            store_uri=store_uri,
            audit_path=root / "audit.jsonl",
        )
        app = create_app(config)
        with ServerThread(app, port):
            yield AuthzStack(
                url=public_url,
                handler_url=handler.url,
                store_uri=store_uri,
                policies_dir=policies,
                audit_path=root / "audit.jsonl",
                identity_secret=bytes.fromhex(identity),
                dev_idp=DevIdentityProvider(root / "devidp", config.dev_issuer),
                pipeline=app.state.gateway.pipeline,
            )
