"""`cedarflow serve`'s options: each flag also from CEDARFLOW_<FLAG>, the command line first."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.authz.policies import PACKAGED_POLICIES
from gateway.cli import build_parser
from gateway.config import ServiceClient
from gateway.stack.serve_command import environment_variable, serve_config, serve_flags

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Pool"


class Refused(Exception):
    pass


def _error(message: str):
    raise Refused(message)


def _config(argv: list[str], environ: dict[str, str]):
    args = build_parser().parse_args(["serve", *argv])
    return serve_config(args, environ, _error)


BASE = {
    "CEDARFLOW_TABLE": "dynamodb://eu-west-1/cedarflow",
    "CEDARFLOW_ARTIFACTS": "s3://bucket/mlflow",
    "CEDARFLOW_ISSUER": ISSUER,
    "CEDARFLOW_CLIENT_ID": "ui,cli,machine",
}


def test_every_flag_has_its_environment_variable():
    names = {environment_variable(flag) for flag in serve_flags()}
    assert {"CEDARFLOW_TABLE", "CEDARFLOW_JWKS_URL", "CEDARFLOW_DRAIN_SECONDS"} <= names
    assert not any("SECRET" in name for name in names)


def test_defaults_are_the_production_ones():
    config = _config([], BASE)
    assert (config.host, config.port) == ("0.0.0.0", 8080)
    assert config.policies_dir == PACKAGED_POLICIES
    assert config.admin_groups == ("admins",)
    assert config.audit_log == "-"
    (issuer,) = config.issuers
    assert issuer.client_ids == ("ui", "cli", "machine")
    assert issuer.jwks_url == f"{ISSUER}/.well-known/jwks.json"
    assert issuer.principal_claim == "sub"


def test_everything_from_the_environment():
    environ = BASE | {
        "CEDARFLOW_JWKS_URL": "https://keys.example/jwks.json",
        "CEDARFLOW_SERVICE_CLIENT": "machine=automation:ci,deploy;other=reporter",
        "CEDARFLOW_PUBLIC_URL": "https://mlflow.example.com",
        "CEDARFLOW_UI_CLIENT_ID": "ui",
        "CEDARFLOW_CLI_CLIENT_ID": "cli",
        "CEDARFLOW_CLI_LOOPBACK_PORT": "50000",
        "CEDARFLOW_POLICIES": "/etc/cedarflow/policies",
        "CEDARFLOW_ADMIN_GROUP": "platform,security",
        "CEDARFLOW_PRINCIPAL_CLAIM": "username",
        "CEDARFLOW_AUDIT_LOG": "/var/log/audit.jsonl",
        "CEDARFLOW_HOST": "127.0.0.1",
        "CEDARFLOW_PORT": "9000",
        "CEDARFLOW_WORKERS": "4",
        "CEDARFLOW_DRAIN_SECONDS": "45",
    }
    config = _config([], environ)
    assert config.issuers[0].jwks_url == "https://keys.example/jwks.json"
    assert config.issuers[0].principal_claim == "username"
    assert config.service_clients == (
        ServiceClient("machine", "automation", ("ci", "deploy")),
        ServiceClient("other", "reporter", ()),
    )
    assert config.public_url == "https://mlflow.example.com"
    assert (config.ui_client_id, config.cli_client_id) == ("ui", "cli")
    assert config.cli_loopback_port == 50000
    assert config.policies_dir == Path("/etc/cedarflow/policies")
    assert config.admin_groups == ("platform", "security")
    assert config.audit_log == "/var/log/audit.jsonl"
    assert (config.host, config.port, config.workers) == ("127.0.0.1", 9000, 4)
    assert config.drain_seconds == 45.0
    login = config.browser_login("ui-secret")
    assert login.logout_style == "cognito" and login.cli_loopback_port == 50000
    assert login.cli_loopback_host == "localhost"


def test_the_command_line_wins_over_the_environment():
    config = _config(["--port", "7000", "--admin-group", "ops"], BASE | {"CEDARFLOW_PORT": "1"})
    assert config.port == 7000 and config.admin_groups == ("ops",)


def test_several_issuers_from_the_environment():
    environ = BASE | {
        "CEDARFLOW_ISSUER": f"{ISSUER},https://login.example.com",
        "CEDARFLOW_CLIENT_ID": "ui,cli;corp-app",
    }
    first, second = _config([], environ).issuers
    assert first.client_ids == ("ui", "cli") and second.client_ids == ("corp-app",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"CEDARFLOW_TABLE": ""}, "--table is required"),
        ({"CEDARFLOW_ARTIFACTS": ""}, "--artifacts is required"),
        ({"CEDARFLOW_ISSUER": ""}, "at least one --issuer"),
        ({"CEDARFLOW_UI_CLIENT_ID": "ui"}, "--public-url"),
        ({"CEDARFLOW_CLI_CLIENT_ID": "cli"}, "needs --ui-client-id"),
        ({"CEDARFLOW_WORKERS": "0"}, "--workers"),
        ({"CEDARFLOW_PORT": "eighty"}, "CEDARFLOW_PORT='eighty' is not a number"),
        ({"CEDARFLOW_SERVICE_CLIENT": "a=x:g1,b=y:g2"}, "separate entries with ';'"),
    ],
)
def test_bad_settings_are_refused(change, message):
    with pytest.raises(Refused, match=message.replace("(", r"\(").replace("[", r"\[")):
        _config([], BASE | change)


def test_webhook_networks_from_the_flag_or_the_environment_reach_the_handler_tier():
    from gateway.stack.handler_tier import handler_env
    from gateway.stack.serve import IDENTITY_SECRET_ENV, SESSION_SECRET_ENV, Service
    from store.webhooks.networks import ALLOW_NETWORKS_ENV

    flags = ["--webhook-allow-network", "10.0.0.0/8", "--webhook-allow-network", "127.0.0.1"]
    assert _config(flags, BASE).webhook_networks == ("10.0.0.0/8", "127.0.0.1/32")
    environ = BASE | {"CEDARFLOW_WEBHOOK_ALLOW_NETWORK": "10.1.0.0/16; 192.168.0.0/24,fd00::/8"}
    config = _config([], environ)
    assert config.webhook_networks == ("10.1.0.0/16", "192.168.0.0/24", "fd00::/8")
    assert _config(flags, environ).webhook_networks == ("10.0.0.0/8", "127.0.0.1/32")
    assert _config([], BASE).webhook_networks == ()
    secrets = {IDENTITY_SECRET_ENV: "i" * 64, SESSION_SECRET_ENV: "s" * 64}
    service = Service(config, secrets, check_table=lambda uri: None)
    service.check()
    env = handler_env(service.handler_settings(), {})
    assert env[ALLOW_NETWORKS_ENV] == "10.1.0.0/16,192.168.0.0/24,fd00::/8"


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["--webhook-allow-network", "10.0.0.0/33"], {}),
        ([], {"CEDARFLOW_WEBHOOK_ALLOW_NETWORK": "10.0.0.0/8;nonsense"}),
    ],
)
def test_a_malformed_webhook_network_is_refused(argv, environ):
    with pytest.raises(Refused, match="--webhook-allow-network"):
        _config(argv, BASE | environ)
