"""The table definition is the one table creation uses, on AWS and on a local server."""

from __future__ import annotations

import uuid
from typing import Any

from botocore.exceptions import ClientError

from store.dynamo.schema import GSI1, SCHEMA
from store.dynamo.table import DynamoTable
from store.dynamo.uri import parse_dynamo_uri


def test_creation_on_aws_sends_the_schema():
    table = DynamoTable(parse_dynamo_uri("dynamodb://us-east-1/cedarflow"))
    sent = _record_creation(table)
    assert list(sent) == [
        "DescribeTable",
        "CreateTable",
        "UpdateTimeToLive",
        "UpdateContinuousBackups",
    ]
    create = sent["CreateTable"][0]
    assert create == SCHEMA.create_table_request("cedarflow", local=False)
    assert create["BillingMode"] == "PAY_PER_REQUEST"
    assert create["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert "ProvisionedThroughput" not in create
    ttl = sent["UpdateTimeToLive"][0]["TimeToLiveSpecification"]
    assert ttl == {"Enabled": True, "AttributeName": "ttl"}
    backups = sent["UpdateContinuousBackups"][0]["PointInTimeRecoverySpecification"]
    assert backups == {"PointInTimeRecoveryEnabled": True}


def test_a_local_server_gets_the_same_keys_and_index(dynalite_endpoint):
    host_port = dynalite_endpoint.removeprefix("http://")
    name = f"schema{uuid.uuid4().hex[:8]}"
    table = DynamoTable(parse_dynamo_uri(f"dynamodb://{host_port}/{name}"))
    table.ensure_table()
    described = table._call("DescribeTable", TableName=name)["Table"]
    assert _keys(described["KeySchema"]) == _keys(SCHEMA.key_schema())
    assert sorted(map(_pair, described["AttributeDefinitions"])) == sorted(
        map(_pair, SCHEMA.attribute_definitions())
    )
    (index,) = described["GlobalSecondaryIndexes"]
    assert index["IndexName"] == GSI1
    assert _keys(index["KeySchema"]) == (("gsi1pk", "HASH"), ("gsi1sk", "RANGE"))
    assert index["Projection"]["ProjectionType"] == "ALL"
    table.ensure_table()  # idempotent


def _record_creation(table: DynamoTable) -> dict[str, list[dict]]:
    """The requests table creation sends, answered here (nothing leaves the process)."""
    sent: dict[str, list[dict]] = {}
    created = False

    def record(operation: str, **request: Any) -> dict:
        nonlocal created
        sent.setdefault(operation, []).append(request)
        if operation == "DescribeTable":
            if not created:
                raise ClientError(
                    {"Error": {"Code": "ResourceNotFoundException", "Message": "no table"}},
                    operation,
                )
            return {"Table": {"TableStatus": "ACTIVE"}}
        if operation == "CreateTable":
            created = True
            return {"TableDescription": {"TableStatus": "CREATING"}}
        return {}

    table._call = record  # every request of DynamoTable goes through _call
    table.ensure_table()
    return sent


def _keys(schema: list[dict]) -> tuple[tuple[str, str], ...]:
    return tuple((k["AttributeName"], k["KeyType"]) for k in schema)


def _pair(definition: dict) -> tuple[str, str]:
    return definition["AttributeName"], definition["AttributeType"]
