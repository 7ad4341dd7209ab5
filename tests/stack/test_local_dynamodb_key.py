"""The stack's local DynamoDB answers only requests signed with the data directory's key."""

from __future__ import annotations

import stat
from pathlib import Path

import boto3
import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from gateway.stack.processes import is_alive

A_BINDING = {"pk": {"S": "EXP#1"}, "sk": {"S": "BIND#user#mallory"}, "role": {"S": "manager"}}


def _key(stack) -> tuple[str, str]:
    secrets = stack.data_dir / "secrets"
    return (
        (secrets / "dynamodb-access-key-id.secret").read_text().strip(),
        (secrets / "dynamodb-secret-access-key.secret").read_text().strip(),
    )


def _client(stack, key_id: str, secret: str, **config):
    return boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=stack.info["dynamodb_url"],
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, **config),
    )


def _refusal(call) -> tuple[int, str]:
    with pytest.raises(ClientError) as refused:
        call()
    error = refused.value.response
    return error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]


def test_a_client_without_the_key_is_refused(stack) -> None:
    assert stack.info["dynamodb"] == "dynalite"
    strangers = {
        "another key": _client(stack, "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG"),
        "no signature": _client(stack, "x", "x", signature_version=UNSIGNED),
    }
    for name, client in strangers.items():
        assert _refusal(client.list_tables) == (400, "UnrecognizedClientException"), name
        write = lambda c=client: c.put_item(TableName="cedarflow", Item=A_BINDING)  # noqa: E731
        assert _refusal(write) == (400, "UnrecognizedClientException"), name
    # Knowing the key id is not enough: the whole request is signed with the secret.
    key_id, secret = _key(stack)
    guesser = _client(stack, key_id, "not-the-secret")
    assert _refusal(guesser.list_tables) == (400, "InvalidSignatureException")
    plain = httpx.post(
        stack.info["dynamodb_url"],
        headers={"X-Amz-Target": "DynamoDB_20120810.ListTables",
                 "Content-Type": "application/x-amz-json-1.0"},
        content=b"{}",
    )  # fmt: skip
    assert plain.status_code == 400
    assert plain.json()["__type"].endswith("#UnrecognizedClientException")

    owner = _client(stack, key_id, secret)
    assert "cedarflow" in owner.list_tables()["TableNames"]
    assert "Item" not in owner.get_item(
        TableName="cedarflow", Key={k: A_BINDING[k] for k in ("pk", "sk")}
    )


def test_the_stack_works_with_its_key_and_keeps_it_off_command_lines(stack) -> None:
    token = stack.token("keyholder", ["vision"])
    with httpx.Client(base_url=stack.url, trust_env=False, timeout=60) as client:
        created = client.post(
            "/api/2.0/mlflow/experiments/create",
            json={"name": "signed-table-requests"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 200, created.text
        experiment_id = created.json()["experiment_id"]
        read = client.get(
            "/api/2.0/mlflow/experiments/get",
            params={"experiment_id": experiment_id},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert read.status_code == 200 and read.json()["experiment"]["name"] == "signed-table-requests"

    key_id, secret = _key(stack)
    for name in ("dynamodb-access-key-id", "dynamodb-secret-access-key"):
        mode = (stack.data_dir / "secrets" / f"{name}.secret").stat().st_mode
        assert stat.S_IMODE(mode) == 0o600
    for pid in stack.pids:
        assert is_alive(pid)
        assert secret.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    # The handler tier (a child) finds the key where boto3 looks: its environment.
    handler_pid = stack.info["child_pids"][1]
    environment = Path(f"/proc/{handler_pid}/environ").read_bytes().split(b"\0")
    assert f"AWS_ACCESS_KEY_ID={key_id}".encode() in environment
