"""DynamoDB throttling or stalling under the handler tier: retried within a bound, then a clear
503 TEMPORARILY_UNAVAILABLE through the gateway, and calls succeed again once it recovers."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field

import httpx
import pytest
from gw_support import ServerThread, handler_tier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.stack.dynamodb_server import DynamoServer
from store.dynamo import client as dynamo_client
from store.dynamo.table import DynamoTable

TIMEOUT_S = 2  # the handler tier's DynamoDB read timeout in these tests
# The longest the handler tier may take to give up: every attempt times out, plus backoff.
BOUND_S = dynamo_client.MAX_ATTEMPTS * (TIMEOUT_S + dynamo_client.CONNECT_TIMEOUT_S) + 7


@dataclass
class ThrottlingProxy:
    """A loopback DynamoDB endpoint that relays to a real one, or answers as a throttled
    table does while `throttled` > 0 (each answer uses one; -1 throttles every request)."""

    target: str
    throttled: int = 0
    requests: list[str] = field(default_factory=list)  # operation of every request received

    def app(self) -> Starlette:
        async def relay(request: Request) -> Response:
            body = await request.body()
            self.requests.append(request.headers.get("x-amz-target", "").rsplit(".", 1)[-1])
            if self.throttled != 0:
                self.throttled -= 1 if self.throttled > 0 else 0
                error = {
                    "__type": "com.amazonaws.dynamodb.v20120810#"
                    "ProvisionedThroughputExceededException",
                    "message": "The level of configured provisioned throughput for the table "
                    "was exceeded.",
                }
                return Response(json.dumps(error), 400, media_type="application/x-amz-json-1.0")
            headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
            async with httpx.AsyncClient(trust_env=False) as client:
                answer = await client.post(self.target, content=body, headers=headers)
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
            return Response(answer.content, answer.status_code, headers=kept)

        return Starlette(routes=[Route("/", relay, methods=["POST"])])


_HOP = {"content-length", "transfer-encoding", "connection", "content-encoding"}


def _get_experiment(gateway, token: str, experiment_id: str) -> httpx.Response:
    # The client waits past the bound: a call that is not answered within it fails the test.
    with httpx.Client(base_url=gateway.url, trust_env=False, timeout=BOUND_S * 2) as client:
        return client.get(
            "/api/2.0/mlflow/experiments/get",
            params={"experiment_id": experiment_id},
            headers={"Authorization": f"Bearer {token}"},
        )


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"


@pytest.fixture
def short_store_timeout(monkeypatch):
    """The handler tiers started by the test read DynamoDB with a short timeout."""
    monkeypatch.setenv(dynamo_client.READ_TIMEOUT_ENV, str(TIMEOUT_S))


def test_a_throttled_table_is_retried_then_answered_503(
    start_gateway, bindings_table, alices, tmp_path, short_store_timeout
):
    dynalite = "http://" + bindings_table.removeprefix("dynamodb://").rsplit("/", 1)[0]
    table_name = bindings_table.rsplit("/", 1)[1]
    proxy = ThrottlingProxy(dynalite)
    with ServerThread(proxy.app()) as front:
        throttled_uri = f"dynamodb://{front.url.removeprefix('http://')}/{table_name}"
        with handler_tier(throttled_uri, tmp_path / "tier") as tier_url:
            gateway = start_gateway(tier_url)
            token = gateway.idp.mint("alice", ["ds-team"])
            assert _get_experiment(gateway, token, alices.experiment_id).status_code == 200
            proxy.requests.clear()
            proxy.throttled = -1
            _assert_unavailable(_get_experiment(gateway, token, alices.experiment_id))
            # One request, every attempt botocore makes, and no more.
            assert proxy.requests == ["GetItem"] * dynamo_client.MAX_ATTEMPTS
            proxy.throttled = dynamo_client.MAX_ATTEMPTS - 1  # the last attempt goes through
            assert _get_experiment(gateway, token, alices.experiment_id).status_code == 200
            assert proxy.throttled == 0
            assert _get_experiment(gateway, token, alices.experiment_id).status_code == 200


def test_a_stalled_dynamodb_is_answered_503_within_the_bound_then_recovers(
    start_gateway, tmp_path, short_store_timeout
):
    with DynamoServer(None, log_path=tmp_path / "dynalite.log", allow_moto=False) as dynamo:
        store_uri = f"dynamodb://{dynamo.url.removeprefix('http://')}/stalls"
        DynamoTable.from_uri(store_uri).ensure_table()
        with handler_tier(store_uri, tmp_path / "tier") as tier_url:
            # Bindings stay cached in the gateway: only the handler tier meets the stall.
            gateway = start_gateway(tier_url, store_uri=store_uri, bindings_ttl_seconds=600)
            token = gateway.idp.mint("alice", ["ds-team"])
            with gateway.client(headers={"Authorization": f"Bearer {token}"}) as client:
                created = client.post("/api/2.0/mlflow/experiments/create", json={"name": "s"})
            assert created.status_code == 200, created.text
            experiment_id = created.json()["experiment_id"]
            assert _get_experiment(gateway, token, experiment_id).status_code == 200
            os.kill(dynamo.pid, signal.SIGSTOP)
            try:
                stalled = _get_experiment(gateway, token, experiment_id)
            finally:
                os.kill(dynamo.pid, signal.SIGCONT)
            _assert_unavailable(stalled)
            assert _get_experiment(gateway, token, experiment_id).status_code == 200
