"""Command-line sign-in, the MLflow auth plugin, and machine jobs, against a running gateway."""

from __future__ import annotations

import argparse
import json
import stat
import threading
from collections.abc import Iterator

import httpx
import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking.request_auth.registry import _request_auth_provider_registry
from sign_in import sign_in_on_dev_page

from gateway.client import auth_plugin, login_command
from gateway.client.auth_plugin import CedarflowAuthProvider
from gateway.client.credentials import CredentialStore, RefreshingToken, TokenGrant
from gateway.client.login_command import add_login_command, login, run_login


@pytest.fixture
def plugin(monkeypatch, tmp_path) -> Iterator[None]:
    """MLFLOW_TRACKING_AUTH=cedarflow with a fresh plugin state and a private credentials file."""
    if not any(p.get_name() == "cedarflow" for p in _request_auth_provider_registry):
        _request_auth_provider_registry.register(CedarflowAuthProvider)
    for name in ("MLFLOW_TRACKING_TOKEN", "CEDARFLOW_CLIENT_ID", "CEDARFLOW_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "cedarflow")
    monkeypatch.setenv("CEDARFLOW_CREDENTIALS", str(tmp_path / "home" / "credentials.json"))
    monkeypatch.setattr(auth_plugin, "_shared", None)
    yield


def person_in_browser(user: str, groups: str = ""):
    """An `open_url` that signs in on the dev page from another thread, as a browser would."""
    done = threading.Event()

    def open_url(url: str) -> None:
        def act() -> None:
            with httpx.Client(trust_env=False, timeout=30) as browser:
                back = sign_in_on_dev_page(browser, url, user, groups)
                browser.get(back.headers["location"])  # to the loopback receiver
            done.set()

        threading.Thread(target=act, daemon=True).start()

    open_url.done = done
    return open_url


def new_run_user(tracking_uri: str) -> str:
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.create_experiment(f"exp-{threading.get_ident()}-{id(client)}")
    return client.create_run(experiment_id).info.user_id


def test_cedarflow_login_keeps_a_refresh_token_only_the_user_can_read(
    start_gateway, handler_url, tmp_path, plugin
):
    gateway = start_gateway(handler_url)
    path = tmp_path / "home" / "credentials.json"
    stored = login(
        gateway.url, open_url=person_in_browser("carol", "ds-team"), store=CredentialStore(path)
    )
    document = json.loads(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stored.username == "carol"
    assert document["logins"][gateway.url]["refresh_token"] == stored.refresh_token
    assert document["logins"][gateway.url]["token_endpoint"] == f"{gateway.url}/devidp/oauth2/token"
    assert new_run_user(gateway.url) == "carol"


def test_the_login_command_opens_the_browser_and_prints_the_exports(
    start_gateway, handler_url, tmp_path, monkeypatch, capsys
):
    gateway = start_gateway(handler_url)
    parser = argparse.ArgumentParser()
    add_login_command(parser.add_subparsers())
    args = parser.parse_args(
        ["login", "--url", gateway.url, "--credentials", str(tmp_path / "c.json")]
    )
    monkeypatch.setattr(login_command.webbrowser, "open", person_in_browser("dave"))
    assert run_login(args) == 0
    out = capsys.readouterr().out
    assert "/devidp/oauth2/authorize?" in out
    assert f"Signed in to {gateway.url} as dave" in out
    assert "export MLFLOW_TRACKING_AUTH=cedarflow" in out


def test_the_plugin_renews_short_lived_tokens_during_a_long_run(
    start_gateway, handler_url, tmp_path, plugin
):
    # Four-second tokens and no clock leeway: a token used past its exp would be refused.
    gateway = start_gateway(handler_url, dev_token_ttl_seconds=4, leeway_seconds=0)
    login(gateway.url, open_url=person_in_browser("erin"), store=CredentialStore())
    client = mlflow.MlflowClient(tracking_uri=gateway.url)
    run = client.create_run(client.create_experiment("long-run"))
    source = auth_plugin.shared_auth()._tokens[gateway.url]
    steps = 0
    while source.fetch_count < 4 and steps < 1000:  # bounded; ~3 token lifetimes
        client.log_metric(run.info.run_id, "loss", 1.0 / (steps + 1), step=steps)
        steps += 1
        threading.Event().wait(0.02)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert source.fetch_count >= 4
    assert len(history) == steps
    assert client.get_run(run.info.run_id).info.user_id == "erin"


def test_a_job_authenticates_with_a_client_id_and_secret(
    start_gateway, handler_url, monkeypatch, plugin
):
    gateway = start_gateway(handler_url)
    monkeypatch.setenv("CEDARFLOW_CLIENT_ID", "trainer-client")
    monkeypatch.setenv("CEDARFLOW_CLIENT_SECRET", gateway.idp.client_secret("trainer-client"))
    assert new_run_user(gateway.url) == "svc-trainer"


def test_a_job_with_a_wrong_secret_is_refused(start_gateway, handler_url, monkeypatch, plugin):
    gateway = start_gateway(handler_url)
    monkeypatch.setenv("CEDARFLOW_CLIENT_ID", "trainer-client")
    monkeypatch.setenv("CEDARFLOW_CLIENT_SECRET", "guess")
    with pytest.raises(MlflowException, match="CEDARFLOW_CLIENT_SECRET"):
        new_run_user(gateway.url)


def test_without_a_login_the_plugin_says_how_to_sign_in(start_gateway, handler_url, plugin):
    gateway = start_gateway(handler_url)
    with pytest.raises(MlflowException, match=f"cedarflow login --url {gateway.url}"):
        new_run_user(gateway.url)


def test_client_credentials_need_a_configured_machine_client(gateway):
    secret = gateway.idp.client_secret("stranger")
    with gateway.client() as client:
        refused = client.post(
            "/devidp/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=("stranger", secret),
        )
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


def test_tokens_are_renewed_in_the_last_quarter_of_a_short_life():
    now = [1000.0]
    issued = []

    def fetch() -> TokenGrant:
        issued.append(now[0])
        return TokenGrant(f"t{len(issued)}", expires_at=now[0] + 8, issued_at=now[0])

    token = RefreshingToken(fetch, clock=lambda: now[0])
    assert token.token() == "t1"
    now[0] = 1005.9
    assert token.token() == "t1"
    now[0] = 1006.0
    assert token.token() == "t2"
    assert token.fetch_count == 2
