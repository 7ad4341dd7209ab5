"""`cedarflow up --webhook-allow-network CIDR` reaches the handler tier, and nothing else does."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.stack.handler_tier import HandlerTierSettings, handler_env
from store.webhooks.networks import ALLOW_NETWORKS_ENV


def settings(networks: tuple[str, ...]) -> HandlerTierSettings:
    return HandlerTierSettings(
        store_uri="dynamodb://127.0.0.1:1/t",
        artifacts_dir=Path("/tmp/none"),
        identity_secret="00" * 32,
        page_token_secret="11" * 32,
        webhook_networks=networks,
    )


def test_the_allowed_networks_are_the_handler_tiers_and_mlflows_switch_is_dropped():
    base = {"MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true"}
    env = handler_env(settings(("127.0.0.1/32", "10.0.0.0/8")), base)
    assert env[ALLOW_NETWORKS_ENV] == "127.0.0.1/32,10.0.0.0/8"
    assert "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS" not in env
    assert handler_env(settings(()), {})[ALLOW_NETWORKS_ENV] == ""


def test_a_malformed_network_is_refused_before_anything_starts(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["up", "--data-dir", str(tmp_path), "--webhook-allow-network", "127.0.0.1/33"])
    assert exited.value.code == 2
    assert "--webhook-allow-network" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
