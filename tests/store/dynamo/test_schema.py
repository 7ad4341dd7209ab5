"""The table definition is the one table creation sends, on AWS and on a local server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from store.dynamo.errors import TableSchemaMismatch
from store.dynamo.schema import GSI1, GSI2, SCHEMA
from store.dynamo.table import DynamoTable
from store.dynamo.uri import parse_dynamo_uri


def test_create_table_request_is_the_schema_with_on_demand_billing_and_a_stream():
    request = SCHEMA.create_table_request("cedarflow")
    assert request == {
        "TableName": "cedarflow",
        "AttributeDefinitions": SCHEMA.attribute_definitions(),
        "KeySchema": SCHEMA.key_schema(),
        "GlobalSecondaryIndexes": SCHEMA.index_definitions(),
        "BillingMode": "PAY_PER_REQUEST",
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }
    assert all("ProvisionedThroughput" not in index for index in request["GlobalSecondaryIndexes"])


def test_creation_sends_the_schema_then_ttl_and_recovery(aws_env):
    table = DynamoTable(parse_dynamo_uri("dynamodb://us-east-1/cedarflow"))
    sent = _spy(table)
    table.ensure_table()
    creates = [request for operation, request in sent if operation == "CreateTable"]
    assert creates == [SCHEMA.create_table_request("cedarflow")]
    updates = {operation: request for operation, request in sent if operation.startswith("Update")}
    assert updates == {
        "UpdateTimeToLive": SCHEMA.time_to_live_request("cedarflow"),
        "UpdateContinuousBackups": SCHEMA.backups_request("cedarflow"),
    }
    assert updates["UpdateTimeToLive"]["TimeToLiveSpecification"] == {
        "Enabled": True,
        "AttributeName": "ttl",
    }


def test_ensure_table_on_an_existing_table_only_describes_it(aws_env):
    table = DynamoTable(parse_dynamo_uri("dynamodb://us-east-1/cedarflow"))
    table.ensure_table()
    sent = _spy(table)
    table.ensure_table()
    assert [operation for operation, _ in sent] == ["DescribeTable"]


def test_a_local_server_gets_the_same_keys_index_and_billing(dynalite_endpoint):
    host_port = dynalite_endpoint.removeprefix("http://")
    name = f"schema{uuid.uuid4().hex[:8]}"
    table = DynamoTable(parse_dynamo_uri(f"dynamodb://{host_port}/{name}"))
    table.ensure_table()
    described = table._call("DescribeTable", TableName=name)["Table"]
    assert _keys(described["KeySchema"]) == _keys(SCHEMA.key_schema())
    assert sorted(map(_pair, described["AttributeDefinitions"])) == sorted(
        map(_pair, SCHEMA.attribute_definitions())
    )
    indexes = {index["IndexName"]: index for index in described["GlobalSecondaryIndexes"]}
    assert sorted(indexes) == [GSI1, GSI2]
    assert _keys(indexes[GSI1]["KeySchema"]) == (("gsi1pk", "HASH"), ("gsi1sk", "RANGE"))
    assert indexes[GSI1]["Projection"]["ProjectionType"] == "ALL"
    assert _keys(indexes[GSI2]["KeySchema"]) == (("gsi2pk", "HASH"), ("gsi2sk", "RANGE"))
    assert indexes[GSI2]["Projection"]["ProjectionType"] == "INCLUDE"
    assert sorted(indexes[GSI2]["Projection"]["NonKeyAttributes"]) == [
        "end_time",
        "lifecycle_stage",
        "user_id",
    ]
    assert SCHEMA.missing_indexes(described) == []
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    table.ensure_table()  # idempotent


def test_a_table_without_the_filter_index_is_refused_naming_the_fix(dynalite_endpoint):
    host_port = dynalite_endpoint.removeprefix("http://")
    name = f"old{uuid.uuid4().hex[:8]}"
    table = DynamoTable(parse_dynamo_uri(f"dynamodb://{host_port}/{name}"))
    earlier = SCHEMA.create_table_request(name)  # a table of an earlier build
    earlier["GlobalSecondaryIndexes"] = [
        i for i in earlier["GlobalSecondaryIndexes"] if i["IndexName"] == GSI1
    ]
    earlier["AttributeDefinitions"] = [
        a for a in earlier["AttributeDefinitions"] if not a["AttributeName"].startswith("gsi2")
    ]
    table._call("CreateTable", **earlier)
    with pytest.raises(TableSchemaMismatch) as refused:
        table.ensure_table()
    message = str(refused.value)
    assert "\n" not in message and "gsi2" in message and "`cedarflow table create`" in message


def _spy(table: DynamoTable) -> list[tuple[str, dict[str, Any]]]:
    """Records every request the table sends from now on (each still reaches the server)."""
    sent: list[tuple[str, dict[str, Any]]] = []
    send = table._call

    def record(operation: str, **request: Any) -> dict:
        sent.append((operation, request))
        return send(operation, **request)

    table._call = record  # every request of DynamoTable goes through _call
    return sent


def _keys(schema: list[dict]) -> tuple[tuple[str, str], ...]:
    return tuple((k["AttributeName"], k["KeyType"]) for k in schema)


def _pair(definition: dict) -> tuple[str, str]:
    return definition["AttributeName"], definition["AttributeType"]
