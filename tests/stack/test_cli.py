"""`cedarflow` argument handling and `cedarflow token`, without starting a stack."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jwt
import pytest

from gateway import cli
from gateway.config import IssuerConfig, ServiceClient
from gateway.stack.datadir import DataDir
from gateway.stack.local import StackConfig, banner


def _up_config(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> StackConfig:
    seen: list[StackConfig] = []

    class FakeStack:
        def __init__(self, config: StackConfig) -> None:
            seen.append(config)

        def run(self) -> int:
            return 0

    monkeypatch.setattr("gateway.stack.local.Stack", FakeStack)
    assert cli.main(["up", *argv]) == 0
    return seen[0]


def test_issuer_options_group_by_issuer(monkeypatch) -> None:
    config = _up_config(
        monkeypatch,
        ["--issuer", "https://a.example/pool/", "--client-id", "c1", "--client-id", "c2",
         "--issuer", "https://b.example", "--jwks-url", "https://b.example/keys",
         "--client-id", "c3,c4", "--no-dev-idp"],
    )  # fmt: skip
    assert config.issuers == (
        IssuerConfig("https://a.example/pool", "https://a.example/pool/.well-known/jwks.json",
                     ("c1", "c2")),
        IssuerConfig("https://b.example", "https://b.example/keys", ("c3", "c4")),
    )  # fmt: skip
    assert config.dev_idp is False


def test_defaults_and_service_clients(monkeypatch) -> None:
    config = _up_config(monkeypatch, ["--service-client", "etl-client=etl:data,ops"])
    assert (config.host, config.port, config.dev_idp) == ("127.0.0.1", 8080, True)
    assert config.data_dir == Path(".cedarflow")
    assert config.service_clients == (ServiceClient("etl-client", "etl", ("data", "ops")),)
    assert config.workers == 2
    assert _up_config(monkeypatch, ["--workers", "1"]).workers == 1


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["up", "--client-id", "x"], "--client-id must follow an --issuer"),
        (["up", "--issuer", "https://x"], "needs at least one --client-id"),
        (["up", "--port", "70000"], "is not a port number"),
        (["up", "--workers", "0"], "--workers must be at least 1"),
        (["up", "--service-client", "noname"], "expected ID=NAME[:GROUPS]"),
        (["up", "--port", "eighty"], "invalid int value"),
    ],
)
def test_usage_errors_are_one_line(argv, expected, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and expected in err


def test_token_refuses_without_a_running_stack(tmp_path, capsys) -> None:
    assert cli.main(["token", "--user", "alice", "--data-dir", str(tmp_path)]) == 1
    assert "no Cedarflow stack is running" in capsys.readouterr().err


def test_token_refuses_when_the_stack_was_killed(tmp_path, capsys) -> None:
    # stack.json stays behind when the stack is SIGKILLed; its pid then runs no more.
    no_such_pid = 2**22 + 1  # above Linux's largest pid_max
    DataDir.at(tmp_path).write_stack_info({"dev_idp": True, "issuer": "x", "pid": no_such_pid})
    assert cli.main(["token", "--user", "alice", "--data-dir", str(tmp_path)]) == 1
    assert "no Cedarflow stack is running" in capsys.readouterr().err


def test_token_refuses_when_dev_provider_is_off(tmp_path, capsys) -> None:
    DataDir.at(tmp_path).write_stack_info(
        {"url": "http://127.0.0.1:1", "dev_idp": False, "pid": os.getpid()}
    )
    assert cli.main(["token", "--user", "alice", "--data-dir", str(tmp_path)]) == 1
    assert "without the dev identity provider" in capsys.readouterr().err


def test_token_is_a_cognito_shaped_access_token(tmp_path, capsys) -> None:
    issuer = "http://127.0.0.1:8080/devidp"
    DataDir.at(tmp_path).write_stack_info(
        {"url": "http://127.0.0.1:8080", "dev_idp": True, "issuer": issuer, "pid": os.getpid()}
    )
    argv = ["token", "--user", "alice", "--groups", "vision, nlp", "--ttl", "600"]
    assert cli.main([*argv, "--data-dir", str(tmp_path)]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), options={"verify_signature": False})
    assert claims["iss"] == issuer and claims["token_use"] == "access"
    assert claims["username"] == "alice" and claims["cognito:groups"] == ["vision", "nlp"]
    assert claims["exp"] - claims["iat"] == 600


def test_banner_names_the_data_dir_so_the_token_line_works_from_anywhere(tmp_path) -> None:
    default = banner(StackConfig(), DataDir.at(".cedarflow"), None)
    assert "export MLFLOW_TRACKING_URI=http://127.0.0.1:8080" in default
    absolute = DataDir.at(".cedarflow").root
    assert absolute.is_absolute()
    assert f"token --data-dir {absolute} --user alice --groups vision)" in default
    other = banner(StackConfig(data_dir=tmp_path, port=9090), DataDir.at(tmp_path), None)
    assert f"token --data-dir {tmp_path} --user alice" in other
    assert "export MLFLOW_TRACKING_URI=http://127.0.0.1:9090" in other


def test_secrets_are_generated_once_and_private(tmp_path) -> None:
    data = DataDir.at(tmp_path / "data")
    data.create()
    first = data.secret("identity")
    assert data.secret("identity") == first and len(bytes.fromhex(first)) == 32
    assert data.secret("page-token") != first
    assert (data.secrets / "identity.secret").stat().st_mode & 0o777 == 0o600
    assert json.loads(json.dumps(data.read_stack_info())) is None
