"""The table definition is the one table creation uses, on AWS and on a local server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from store.dynamo.errors import TableSchemaMismatch
from store.dynamo.schema import GSI1, GSI2, SCHEMA
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
    table.ensure_table()  # idempotent


def test_a_table_without_the_filter_index_is_refused_naming_the_fix(dynalite_endpoint):
    host_port = dynalite_endpoint.removeprefix("http://")
    name = f"old{uuid.uuid4().hex[:8]}"
    table = DynamoTable(parse_dynamo_uri(f"dynamodb://{host_port}/{name}"))
    earlier = SCHEMA.create_table_request(name, local=True)  # a table of an earlier build
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
