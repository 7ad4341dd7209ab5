"""`cedarflow table create|check` as a platform engineer runs them, on dynalite, on moto's
server (every setting reported) and on the AWS form of the URI; and the one-line summary
`cedarflow serve` shows."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from gateway.cli import main
from store.dynamo.check import check_table
from store.dynamo.schema import SCHEMA
from store.dynamo.table import DynamoTable
from store.dynamo.uri import parse_dynamo_uri

# The console script of this environment, as a platform engineer runs it.
CEDARFLOW = str(Path(sys.executable).parent / "cedarflow")


def _name() -> str:
    return f"cli{uuid.uuid4().hex[:10]}"


def cedarflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CEDARFLOW, *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def moto_env(moto_endpoint) -> dict[str, str]:
    """boto3's defaults pointed at moto's server, as `dynamodb:///TABLE` reads them."""
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def _moto_table(moto_env: dict[str, str], name: str, monkeypatch) -> DynamoTable:
    for key, value in moto_env.items():
        monkeypatch.setenv(key, value)
    return DynamoTable(parse_dynamo_uri(f"dynamodb:///{name}"))


# ---- dynalite --------------------------------------------------------------------------------


def test_missing_table_then_create_twice_then_check_on_dynalite(dynalite_endpoint):
    uri = f"dynamodb://{dynalite_endpoint.removeprefix('http://')}/{_name()}"
    missing = cedarflow("table", "check", "--table", uri)
    assert missing.returncode == 1
    assert missing.stdout.splitlines() == [
        f"DynamoDB table {uri.rsplit('/', 1)[1]} does not exist: "
        f"create it with `cedarflow table create --table {uri}`"
    ]

    created = cedarflow("table", "create", "--table", uri)
    assert created.returncode == 0, created.stderr
    assert "creating table" in created.stderr
    again = cedarflow("table", "create", "--table", uri)
    assert again.returncode == 0, again.stderr
    assert "creating table" not in again.stderr

    checked = cedarflow("table", "check", "--table", uri)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "matches the schema" in checked.stdout
    assert "stream, TTL, point-in-time recovery: not kept by this server" in checked.stdout


def test_a_table_without_the_index_fails_the_check_on_dynalite(dynalite_endpoint):
    uri = f"dynamodb://{dynalite_endpoint.removeprefix('http://')}/{_name()}"
    table = DynamoTable(parse_dynamo_uri(uri))
    table._call(
        "CreateTable",
        TableName=table.name,
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in SCHEMA.key],
        KeySchema=SCHEMA.key_schema(),
        BillingMode="PAY_PER_REQUEST",
    )
    checked = cedarflow("table", "check", "--table", uri)
    assert checked.returncode == 1
    assert checked.stdout.splitlines() == [
        "attribute gsi1pk: expected type S, found no definition",
        "attribute gsi1sk: expected type S, found no definition",
        "attribute gsi2pk: expected type S, found no definition",
        "attribute gsi2sk: expected type S, found no definition",
        "index gsi1: expected key gsi1pk (HASH), gsi1sk (RANGE), projection ALL, "
        "found no such index",
        "index gsi2: expected key gsi2pk (HASH), gsi2sk (RANGE), projection INCLUDE "
        "(end_time, lifecycle_stage, user_id), found no such index",
    ]
    created = cedarflow("table", "create", "--table", uri)  # never changes what is there
    assert created.returncode == 1
    assert "index gsi1: expected" in created.stdout


# ---- moto's server: dynamodb:///TABLE with AWS_ENDPOINT_URL_DYNAMODB -------------------------


def test_wrong_key_is_reported_by_the_check_on_moto(moto_env, monkeypatch):
    name = _name()
    table = _moto_table(moto_env, name, monkeypatch)
    table._call(
        "CreateTable",
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    checked = cedarflow("table", "check", "--table", f"dynamodb:///{name}", env=moto_env)
    assert checked.returncode == 1
    lines = checked.stdout.splitlines()
    assert lines[0] == "primary key: expected pk (HASH), sk (RANGE), found id (HASH)"
    assert "stream: expected NEW_AND_OLD_IMAGES images, found no stream" in lines
    assert "point-in-time recovery: expected ENABLED, found DISABLED" in lines


def test_create_completes_what_a_restored_table_lacks_on_moto(moto_env, monkeypatch):
    name = _name()
    table = _moto_table(moto_env, name, monkeypatch)
    request = SCHEMA.create_table_request(name)
    del request["StreamSpecification"]  # a point-in-time restore has no stream, TTL or PITR
    table._call("CreateTable", **request)
    uri = f"dynamodb:///{name}"
    before = cedarflow("table", "check", "--table", uri, env=moto_env)
    assert before.returncode == 1
    assert before.stdout.splitlines() == [
        "stream: expected NEW_AND_OLD_IMAGES images, found no stream",
        "TTL: expected ENABLED on attribute ttl, found DISABLED",
        "point-in-time recovery: expected ENABLED, found DISABLED",
    ]
    created = cedarflow("table", "create", "--table", uri, env=moto_env)
    assert created.returncode == 0, created.stdout + created.stderr
    assert "switching on TTL (attribute ttl)" in created.stderr
    after = cedarflow("table", "check", "--table", uri, env=moto_env)
    assert after.returncode == 0, after.stdout
    assert after.stdout.strip() == f"DynamoDB table {name} matches the schema"


# ---- dynamodb://REGION/TABLE (moto in process) -----------------------------------------------


def test_region_form_create_and_check(aws_env, capsys):
    uri = f"dynamodb://us-east-1/{_name()}"
    assert main(["table", "check", "--table", uri]) == 1
    assert main(["table", "create", "--table", uri]) == 0
    assert main(["table", "check", "--table", uri]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("matches the schema")


def test_a_bad_uri_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["table", "check", "--table", "dynamodb://nowhere/t"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("cedarflow table check: --table: ")


def test_an_unreachable_server_is_one_line(dynalite_endpoint):
    # A port nothing listens on: the connection is refused at once (retried, then reported).
    checked = cedarflow("table", "check", "--table", "dynamodb://127.0.0.1:9/cedarflow")
    assert checked.returncode == 1
    assert len(checked.stderr.strip().splitlines()) == 1
    assert checked.stderr.startswith("cedarflow table check: DynamoDB table cedarflow: ")


# ---- what `cedarflow serve` calls at start ---------------------------------------------------


def test_summary_names_the_create_command_for_a_missing_table(aws_env):
    uri = f"dynamodb://us-east-1/{_name()}"
    report = check_table(uri)
    assert (report.matches, report.missing) == (False, True)
    assert report.summary.endswith(f"create it with `cedarflow table create --table {uri}`")
    assert "\n" not in report.summary


def test_summary_lists_every_difference_on_one_line(aws_env):
    table = DynamoTable(parse_dynamo_uri(f"dynamodb://us-east-1/{_name()}"))
    table._call("CreateTable", **SCHEMA.create_table_request(table.name))
    report = check_table(table)
    assert not report.matches and not report.missing
    assert "\n" not in report.summary
    assert "TTL: expected ENABLED on attribute ttl, found DISABLED" in report.summary
    assert f"`cedarflow table create --table dynamodb://us-east-1/{table.name}`" in report.summary
