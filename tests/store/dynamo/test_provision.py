"""Creating the table: idempotent, completing what a table lacks, never changing what differs."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from store.dynamo.check import check_table
from store.dynamo.provision import create_table
from store.dynamo.schema import SCHEMA
from store.dynamo.table import DynamoTable
from store.dynamo.uri import parse_dynamo_uri


def _aws_table() -> DynamoTable:
    return DynamoTable(parse_dynamo_uri(f"dynamodb://us-east-1/prov{uuid.uuid4().hex[:10]}"))


def _operations(table: DynamoTable) -> list[str]:
    """Names every request the table sends from now on (each still reaches the server)."""
    sent: list[str] = []
    send = table._call

    def record(operation: str, **request: Any) -> dict:
        sent.append(operation)
        return send(operation, **request)

    table._call = record
    return sent


def test_create_twice_creates_once_and_changes_nothing_the_second_time(aws_env):
    table = _aws_table()
    said: list[str] = []
    assert create_table(table, say=said.append).matches
    assert said[0] == f"creating table {table.name}"
    sent = _operations(table)
    said.clear()
    assert create_table(table, say=said.append).matches
    assert said == []
    assert not [op for op in sent if op.startswith(("Create", "Update"))]


def test_create_completes_a_table_restored_without_stream_ttl_and_recovery(aws_env):
    table = _aws_table()
    request = SCHEMA.create_table_request(table.name)
    del request["StreamSpecification"]  # what a point-in-time restore gives back
    table._call("CreateTable", **request)
    assert {d.setting for d in check_table(table).differences} == {
        "stream",
        "TTL",
        "point-in-time recovery",
    }
    sent = _operations(table)
    assert create_table(table).matches
    assert {"UpdateTable", "UpdateTimeToLive", "UpdateContinuousBackups"} <= set(sent)
    assert "CreateTable" not in sent


def test_create_never_changes_a_setting_that_is_there_with_another_value(aws_env):
    table = _aws_table()
    request = SCHEMA.create_table_request(table.name)
    request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    table._call("CreateTable", **request)
    table._call(
        "UpdateTimeToLive",
        TableName=table.name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"},
    )
    sent = _operations(table)
    report = create_table(table)
    assert [str(d) for d in report.differences] == [
        "stream: expected NEW_AND_OLD_IMAGES images, found KEYS_ONLY",
        "TTL: expected ENABLED on attribute ttl, found ENABLED on attribute expires",
    ]
    assert "UpdateTable" not in sent and "UpdateTimeToLive" not in sent
    assert "UpdateContinuousBackups" in sent  # recovery was off altogether: switched on


def test_concurrent_creators_both_end_with_the_table(dynalite_endpoint):
    host_port = dynalite_endpoint.removeprefix("http://")
    uri = f"dynamodb://{host_port}/prov{uuid.uuid4().hex[:10]}"
    reports: list = []
    starters = [
        threading.Thread(
            target=lambda: reports.append(create_table(DynamoTable(parse_dynamo_uri(uri))))
        )
        for _ in range(3)
    ]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join()
    assert len(reports) == 3
    assert all(report.matches for report in reports)
