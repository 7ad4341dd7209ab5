"""One name, several principals: two trusted issuers and a machine client called `alice`.

A second gateway on the same handler tier and table trusts two issuers ("pool A" and "pool B",
their keys served over HTTP), and knows a machine client whose service name is `alice`. Pool
B's Alice even carries the same `sub` as pool A's Alice. Each
stays its own principal: none gets the others' bindings, and a grant to plain "alice" is
refused until it says which Alice it means.
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from gw_support import ServerThread, free_port
from mlflow_calls import mlflow_client_of
from starlette.applications import Starlette
from starlette.routing import Route

from gateway.app import create_app
from gateway.client.permissions_cli import add_permission_commands
from gateway.config import GatewayConfig, IssuerConfig, ServiceClient
from gateway.devidp.provider import DEV_CLIENT_ID, DevIdentityProvider, subject_for

MACHINE_CLIENT = "nightly-job-client"
BASE = "/api/3.0/cedarflow/permissions"
POOL_A = "pool-a"  # pool A's principal tag


@dataclass
class TwoIssuers:
    url: str
    pool_a: DevIdentityProvider  # a trusted issuer
    pool_b: DevIdentityProvider  # another trusted issuer, minting the same `sub`s

    def http(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )


@pytest.fixture(scope="module")
def two_issuers(authz_stack, tmp_path_factory) -> Iterator[TwoIssuers]:
    root = tmp_path_factory.mktemp("two-issuers")
    pool_port = free_port()
    pool_a = DevIdentityProvider(root / "pool-a", f"http://127.0.0.1:{pool_port}/pool-a")
    pool_b = DevIdentityProvider(root / "pool-b", f"http://127.0.0.1:{pool_port}/pool-b")
    jwks = Starlette(  # each pool publishes its keys and its discovery document
        routes=[
            Route(f"/{name}/.well-known/{document}", endpoint)
            for name, pool in (("pool-a", pool_a), ("pool-b", pool_b))
            for document, endpoint in (
                ("jwks.json", pool.jwks_endpoint),
                ("openid-configuration", pool.discovery_endpoint),
            )
        ]
    )
    port = free_port()
    config = GatewayConfig(
        upstream_url=authz_stack.handler_url,
        identity_secret=authz_stack.identity_secret,
        public_url=f"http://127.0.0.1:{port}",
        issuers=(
            IssuerConfig(
                issuer=pool_a.issuer,
                jwks_url=pool_a.jwks_url,
                client_ids=(DEV_CLIENT_ID,),
                principal_tag=POOL_A,
            ),
            IssuerConfig(
                issuer=pool_b.issuer,
                jwks_url=pool_b.jwks_url,
                client_ids=(DEV_CLIENT_ID, MACHINE_CLIENT),
            ),
        ),
        service_clients=(ServiceClient(MACHINE_CLIENT, "alice"),),
        policies_dir=authz_stack.policies_dir,
        store_uri=authz_stack.store_uri,
        audit_path=root / "audit.jsonl",
    )
    app = create_app(config)
    with ServerThread(jwks, pool_port), ServerThread(app, port):
        yield TwoIssuers(
            url=config.public_url,
            pool_a=pool_a,
            pool_b=pool_b,
        )


@pytest.fixture(scope="module")
def tokens(two_issuers) -> dict[str, str]:
    """Every Alice signs in once (the machine client last, as an attacker would)."""
    out = {
        "alice": two_issuers.pool_a.mint("alice", ["vision"]),
        "pool-b alice": two_issuers.pool_b.mint("alice", ["pool-b-team"]),
        "service alice": two_issuers.pool_b.mint("", machine_client_id=MACHINE_CLIENT),
        "gina": two_issuers.pool_a.mint("gina", ["lab"]),
    }
    for token in out.values():
        with two_issuers.http(token) as http:
            seen = http.get("/api/2.0/mlflow/experiments/search", params={"max_results": 1})
            assert seen.status_code == 200, seen.text
    return out


def _create_experiment(two_issuers: TwoIssuers, token: str, name: str) -> str:
    with two_issuers.http(token) as http:
        created = http.post("/api/2.0/mlflow/experiments/create", json={"name": name})
        assert created.status_code == 200, created.text
        return created.json()["experiment_id"]


def _reads(two_issuers: TwoIssuers, token: str, experiment_id: str) -> int:
    with two_issuers.http(token) as http:
        params = {"experiment_id": experiment_id}
        return http.get("/api/2.0/mlflow/experiments/get", params=params).status_code


def test_another_issuers_user_with_the_same_sub_gets_nothing(two_issuers, tokens):
    assert subject_for("alice")  # both providers derive `sub` from the user name alike
    experiment_id = _create_experiment(two_issuers, tokens["alice"], "alice-two-issuers")
    assert _reads(two_issuers, tokens["alice"], experiment_id) == 200
    assert _reads(two_issuers, tokens["pool-b alice"], experiment_id) == 403
    assert _reads(two_issuers, tokens["service alice"], experiment_id) == 403
    with two_issuers.http(tokens["alice"]) as http:
        listing = http.get(
            f"{BASE}/list", params={"resource_type": "experiment", "resource_id": experiment_id}
        ).json()["bindings"]
    assert listing["users"] == {f"{POOL_A}:{subject_for('alice')}": "manager"}


def test_a_grant_to_an_ambiguous_name_is_refused_with_the_ways_out(two_issuers, tokens):
    experiment_id = _create_experiment(two_issuers, tokens["gina"], "gina-two-issuers")
    target = {"resource_type": "experiment", "resource_id": experiment_id}
    with two_issuers.http(tokens["gina"]) as http:
        refused = http.post(f"{BASE}/grant", json={**target, "username": "alice", "role": "reader"})
        mlflow_shaped = http.post(
            "/api/3.0/mlflow/users/permissions/grant",
            json={**target, "username": "alice", "permission": "READ"},
        )
        assert refused.status_code == mlflow_shaped.status_code == 400
        error = refused.json()
        assert error["error_code"] == "INVALID_PARAMETER_VALUE"
        message = error["message"]
        assert (
            "ambiguous" in message and "'alice@pool-a'" in message and "'alice@service'" in message
        )
        assert f"{POOL_A}:{subject_for('alice')}" in message and "service:alice" in message
        assert message.count("principal id") == 3  # the local, pool B's, the machine client
        granted = http.post(
            f"{BASE}/grant", json={**target, "username": "alice@pool-a", "role": "reader"}
        )
        assert granted.status_code == 200, granted.text
    assert _reads(two_issuers, tokens["alice"], experiment_id) == 200
    assert _reads(two_issuers, tokens["pool-b alice"], experiment_id) == 403
    assert _reads(two_issuers, tokens["service alice"], experiment_id) == 403


def test_the_command_line_names_a_principal_when_a_name_is_ambiguous(two_issuers, tokens, capsys):
    experiment_id = _create_experiment(two_issuers, tokens["gina"], "gina-cli-two-issuers")
    parser = argparse.ArgumentParser()
    add_permission_commands(parser.add_subparsers())
    with mlflow_client_of(two_issuers.url, tokens["gina"]):
        ambiguous = parser.parse_args(
            ["grant", "--user", "alice", "--role", "editor", "--experiment", experiment_id]
        )
        with pytest.raises(SystemExit, match="ambiguous"):
            ambiguous.run(ambiguous)
        service = parser.parse_args(
            ["grant", "--principal", "service:alice", "--role", "editor",
             "--experiment", experiment_id]
        )  # fmt: skip
        assert service.run(service) == 0
        bogus = parser.parse_args(
            ["grant", "--principal", secrets.token_hex(4), "--role", "editor",
             "--experiment", experiment_id]
        )  # fmt: skip
        with pytest.raises(SystemExit, match="not a principal id"):
            bogus.run(bogus)
    capsys.readouterr()
    assert _reads(two_issuers, tokens["service alice"], experiment_id) == 200
    assert _reads(two_issuers, tokens["alice"], experiment_id) == 403
    assert _reads(two_issuers, tokens["pool-b alice"], experiment_id) == 403
