"""Fixtures for gateway tests: real HTTP servers on loopback ports, run in background threads."""

from __future__ import annotations

import os

# Before MLflow is imported: its telemetry thread edits os.environ while requests iterates it.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from gw_support import MACHINE, SECRET, EchoUpstream, ServerThread, free_port
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.devidp.provider import DevIdentityProvider


@pytest.fixture
def echo_upstream() -> Iterator[tuple[EchoUpstream, str]]:
    echo = EchoUpstream()
    with ServerThread(echo.app()) as server:
        yield echo, server.url


@dataclass
class RunningGateway:
    url: str
    idp: DevIdentityProvider
    config: GatewayConfig
    app: Starlette

    def jwks_fetches(self) -> int:
        return self.app.state.gateway.authenticator.jwks_caches[self.idp.issuer].fetch_count

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, trust_env=False, timeout=30, **kwargs)


GatewayFactory = Callable[..., RunningGateway]


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    """Start a gateway with the dev identity provider in front of `upstream_url`."""
    servers: list[ServerThread] = []

    def start(upstream_url: str, *, authorizer=None, **overrides) -> RunningGateway:
        port = free_port()
        config = GatewayConfig(
            upstream_url=upstream_url,
            identity_secret=SECRET,
            public_url=f"http://127.0.0.1:{port}",
            dev_idp_dir=tmp_path / "devidp",
            service_clients=(MACHINE,),
            **overrides,
        )
        app = create_app(config, authorizer=authorizer)
        # As at the edge: X-Forwarded-* from clients is not trusted.
        server = ServerThread(app, port=port, proxy_headers=False).__enter__()
        servers.append(server)
        return RunningGateway(url=server.url, idp=app.state.dev_idp, config=config, app=app)

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def gateway(start_gateway, echo_upstream) -> RunningGateway:
    return start_gateway(echo_upstream[1])
