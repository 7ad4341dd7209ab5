"""Fixtures for gateway tests: real HTTP servers on loopback ports, run in background threads."""

from __future__ import annotations

import os

# Before MLflow is imported: its telemetry thread edits os.environ while requests iterates it.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from gw_support import (
    EchoUpstream,
    ServerThread,
    free_port,
    gateway_config,
    handler_tier,
    table_on,
)
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.authn.principal import DEV_TAG, principal_id
from gateway.config import GatewayConfig
from gateway.devidp.provider import DevIdentityProvider, subject_for


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


@pytest.fixture(scope="session")
def bindings_table(dynalite_endpoint: str) -> str:
    """The table the gateways of these tests decide with (and their handler tier's)."""
    return table_on(dynalite_endpoint, "gateway_tests")


@pytest.fixture(scope="session")
def handler_url(bindings_table: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """MLflow's handler tier on the DynamoDB stores of `bindings_table`, as in `cedarflow up`."""
    with handler_tier(bindings_table, tmp_path_factory.mktemp("handler-tier")) as url:
        yield url


@dataclass(frozen=True)
class Owned:
    """An experiment and a run of alice's (its manager), made through the tracking store."""

    experiment_id: str
    run_id: str


@pytest.fixture(scope="session")
def alices(bindings_table: str) -> Owned:
    from store.handler.identity import Principal, bind_principal
    from store.tracking import DynamoTrackingStore

    alice = Principal(principal_id(DEV_TAG, subject_for("alice")), "alice", groups=("ds-team",))
    store = DynamoTrackingStore(bindings_table, "mlflow-artifacts:/")
    with bind_principal(alice):
        experiment_id = store.create_experiment(f"alices-{uuid.uuid4().hex[:8]}")
        run = store.create_run(experiment_id, "alice", 0, [], "first")
    return Owned(experiment_id, run.info.run_id)


@pytest.fixture
def start_gateway(tmp_path: Path, bindings_table: str) -> Iterator[GatewayFactory]:
    """Start a gateway with the dev identity provider in front of `upstream_url`, deciding with
    the shipped policies on `bindings_table` unless told otherwise."""
    servers: list[ServerThread] = []

    def start(upstream_url: str, **overrides) -> RunningGateway:
        port = free_port()
        store_uri = overrides.pop("store_uri", bindings_table)
        config = gateway_config(upstream_url, port, tmp_path, store_uri, **overrides)
        app = create_app(config)
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
