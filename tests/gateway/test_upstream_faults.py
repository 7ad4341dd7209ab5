"""The handler tier failing under the gateway: callers get MLflow JSON, never a hang."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from gw_support import ServerThread, handler_tier
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

UPSTREAM_TIMEOUT = 20.0  # the gateway's configured bound on waiting for the handler tier
CALLERS = 4


def _get_experiment(gateway, token: str, experiment_id: str) -> httpx.Response:
    # The client waits longer than the gateway's bound: a gateway that hangs fails the test.
    with httpx.Client(base_url=gateway.url, trust_env=False, timeout=UPSTREAM_TIMEOUT * 3) as c:
        return c.get(
            "/api/2.0/mlflow/experiments/get",
            params={"experiment_id": experiment_id},
            headers={"Authorization": f"Bearer {token}"},
        )


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code in (502, 503), response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"


@pytest.fixture
def own_handler_tier(bindings_table, tmp_path):
    """A handler tier of this test alone (it gets killed)."""
    with handler_tier(bindings_table, tmp_path / "tier") as url:
        yield url


def _tier_pid(url: str) -> int:
    port = url.rsplit(":", 1)[1]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    argv = cmdline.read().split(b"\0")
            except OSError:
                continue
            if b"store.handler.app:app" in argv and port.encode() in argv:
                return int(entry)
    raise AssertionError(f"no handler tier on {url}")


def test_calls_in_flight_and_after_a_killed_handler_tier_get_mlflow_json(
    start_gateway, own_handler_tier, alices
):
    gateway = start_gateway(own_handler_tier, upstream_timeout_seconds=UPSTREAM_TIMEOUT)
    token = gateway.idp.mint("alice", ["ds-team"])
    assert _get_experiment(gateway, token, alices.experiment_id).status_code == 200
    pid = _tier_pid(own_handler_tier)
    os.kill(pid, signal.SIGSTOP)  # calls reach it and wait: they are in flight when it dies
    try:
        with ThreadPoolExecutor(CALLERS) as pool:
            in_flight = [
                pool.submit(_get_experiment, gateway, token, alices.experiment_id)
                for _ in range(CALLERS)
            ]
            threading.Event().wait(2.0)  # let the calls reach the stopped process
            os.kill(pid, signal.SIGKILL)
            answers = [future.result() for future in in_flight]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    for response in answers:
        _assert_unavailable(response)
    _assert_unavailable(_get_experiment(gateway, token, alices.experiment_id))


def test_a_stalled_handler_tier_is_answered_within_the_upstream_timeout(
    start_gateway, own_handler_tier, alices
):
    gateway = start_gateway(own_handler_tier, upstream_timeout_seconds=2.0)
    token = gateway.idp.mint("alice", ["ds-team"])
    pid = _tier_pid(own_handler_tier)
    os.kill(pid, signal.SIGSTOP)
    try:
        response = _get_experiment(gateway, token, alices.experiment_id)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert response.status_code == 504
    assert response.json()["error_code"] == "DEADLINE_EXCEEDED"
    assert _get_experiment(gateway, token, alices.experiment_id).status_code == 200


def _failing_upstream() -> Starlette:
    async def crash_page(request) -> Response:
        page = "<html><body><h1>Internal Server Error</h1>Traceback (most recent call last)"
        return Response(page, status_code=500, media_type="text/html")

    async def plain(request) -> Response:
        return PlainTextResponse("Bad Gateway", status_code=502)

    return Starlette(
        routes=[
            Route("/api/2.0/mlflow/experiments/get", crash_page),
            Route("/api/2.0/mlflow/experiments/search", plain),
        ]
    )


def test_a_handler_tier_error_page_reaches_the_client_as_mlflow_json(start_gateway, alices):
    with ServerThread(_failing_upstream()) as upstream:
        gateway = start_gateway(upstream.url)
        token = gateway.idp.mint("alice", ["ds-team"])
        crashed = _get_experiment(gateway, token, alices.experiment_id)
        with gateway.client(headers={"Authorization": f"Bearer {token}"}) as client:
            unavailable = client.get("/api/2.0/mlflow/experiments/search")
    assert crashed.status_code == 500
    assert crashed.json()["error_code"] == "INTERNAL_ERROR"
    assert "Traceback" not in crashed.text
    _assert_unavailable(unavailable)
