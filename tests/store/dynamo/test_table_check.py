"""A live table compared with the schema: every setting, on moto, moto's server and dynalite."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from store.dynamo.check import (
    NOT_OFFERED_LOCALLY,
    Difference,
    LiveTable,
    check_table,
    compare,
    table_differences,
)
from store.dynamo.provision import create_table
from store.dynamo.schema import SCHEMA, IndexSchema, TableSchema
from store.dynamo.table import DynamoTable
from store.dynamo.uri import parse_dynamo_uri

# The schema with one more index: a check must follow whatever the schema defines.
TWO_INDEXES = dataclasses.replace(
    SCHEMA, indexes=(*SCHEMA.indexes, IndexSchema("gsi9", ("gsi9pk", "gsi9sk"), "ALL"))
)


def _name() -> str:
    return f"check{uuid.uuid4().hex[:10]}"


def _aws_table() -> DynamoTable:
    return DynamoTable(parse_dynamo_uri(f"dynamodb://us-east-1/{_name()}"))


def _settings(report) -> list[str]:
    return [difference.setting for difference in report.differences]


# ---- AWS-shaped (moto in process) ---------------------------------------------------------------


def test_a_created_table_matches_with_every_setting_checked(aws_env):
    table = _aws_table()
    create_table(table)
    report = check_table(table)
    assert report.matches
    assert report.differences == ()
    assert report.not_checked == ()
    assert table_differences(table) == []


def test_a_missing_table_is_one_difference(aws_env):
    table = _aws_table()
    report = check_table(table)
    assert not report.matches
    assert report.differences == (
        Difference("table", f"a table named {table.name}", "no such table"),
    )


def test_check_accepts_a_uri(aws_env):
    table = _aws_table()
    create_table(table)
    assert table_differences(f"dynamodb://us-east-1/{table.name}") == []


def test_every_setting_that_differs_is_listed(aws_env):
    table = _aws_table()
    keys_only = [{**index, "Projection": {"ProjectionType": "KEYS_ONLY"}}
                 for index in SCHEMA.index_definitions()]  # fmt: skip
    table._call(
        "CreateTable",
        TableName=table.name,
        AttributeDefinitions=[*SCHEMA.attribute_definitions(),
                              {"AttributeName": "other", "AttributeType": "N"}],
        KeySchema=SCHEMA.key_schema(),
        GlobalSecondaryIndexes=keys_only,
        LocalSecondaryIndexes=[{
            "IndexName": "by-other",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                          {"AttributeName": "other", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }],
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
    )  # fmt: skip
    table._call(
        "UpdateTimeToLive",
        TableName=table.name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"},
    )
    report = check_table(table)
    assert {str(d) for d in report.differences} == {
        "attribute other: expected no definition, found type N",
        "index gsi1 projection: expected ALL, found KEYS_ONLY",
        "index gsi2 projection: expected INCLUDE (end_time, lifecycle_stage, user_id), "
        "found KEYS_ONLY",
        "local index by-other: expected no such index, "
        "found key pk (HASH), other (RANGE), projection KEYS_ONLY",
        "billing mode: expected PAY_PER_REQUEST, found PROVISIONED",
        "stream: expected NEW_AND_OLD_IMAGES images, found no stream",
        "TTL: expected ENABLED on attribute ttl, found ENABLED on attribute expires",
        "point-in-time recovery: expected ENABLED, found DISABLED",
    }


def test_another_key_is_a_difference(aws_env):
    table = _aws_table()
    table._call(
        "CreateTable",
        TableName=table.name,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    report = check_table(table)
    assert report.differences[:1] == (
        Difference("primary key", "pk (HASH), sk (RANGE)", "id (HASH)"),
    )
    assert "index gsi1" in _settings(report)
    assert "attribute id" in _settings(report)


def test_the_check_follows_the_indexes_the_schema_defines(aws_env):
    table = _aws_table()
    create_table(table)
    assert [str(d) for d in check_table(table, TWO_INDEXES).differences] == [
        "attribute gsi9pk: expected type S, found no definition",
        "attribute gsi9sk: expected type S, found no definition",
        "index gsi9: expected key gsi9pk (HASH), gsi9sk (RANGE), projection ALL, "
        "found no such index",
    ]

    wider = _aws_table()
    create_table(wider, TWO_INDEXES)
    assert check_table(wider, TWO_INDEXES).matches
    assert _settings(check_table(wider)) == [
        "attribute gsi9pk",
        "attribute gsi9sk",
        "index gsi9",
    ]


def test_an_index_still_backfilling_and_ttl_being_switched_on():
    description = {
        "TableStatus": "ACTIVE",
        "KeySchema": SCHEMA.key_schema(),
        "AttributeDefinitions": SCHEMA.attribute_definitions(),
        "GlobalSecondaryIndexes": [
            {**index, "IndexStatus": "CREATING"} for index in SCHEMA.index_definitions()
        ],
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
        "StreamSpecification": SCHEMA.stream_specification(),
    }
    live = LiveTable(
        description,
        ttl={"TimeToLiveStatus": "ENABLING", "AttributeName": "ttl"},
        backups={"PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "ENABLED"}},
    )
    report = compare(live, SCHEMA, "t")
    assert [str(d) for d in report.differences] == [
        "index gsi1 status: expected ACTIVE, found CREATING",
        "index gsi2 status: expected ACTIVE, found CREATING",
    ]
    creating = LiveTable({**description, "TableStatus": "CREATING"}, live.ttl, live.backups)
    assert "table status" in _settings(compare(creating, SCHEMA, "t"))


# ---- moto's server, the AWS-shaped URI with AWS_ENDPOINT_URL_DYNAMODB ---------------------------


def test_moto_server_reports_every_setting_through_boto3_defaults(moto_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    table = DynamoTable(parse_dynamo_uri(f"dynamodb:///{_name()}"))
    assert check_table(table).differences[0].found == "no such table"
    create_table(table)
    report = check_table(table)
    assert report.matches
    assert report.not_checked == ()  # a loopback endpoint, but a server that keeps everything


# ---- dynalite -----------------------------------------------------------------------------------


def _dynalite_table(endpoint: str) -> DynamoTable:
    host_port = endpoint.removeprefix("http://")
    return DynamoTable(parse_dynamo_uri(f"dynamodb://{host_port}/{_name()}"))


def test_dynalite_matches_and_says_what_it_cannot_report(dynalite_endpoint):
    table = _dynalite_table(dynalite_endpoint)
    create_table(table)
    report = check_table(table)
    assert report.matches
    assert report.not_checked == NOT_OFFERED_LOCALLY == ("stream", "TTL", "point-in-time recovery")


def test_dynalite_still_compares_keys_indexes_and_billing(dynalite_endpoint):
    table = _dynalite_table(dynalite_endpoint)
    create_table(table, TWO_INDEXES)
    assert _settings(check_table(table)) == ["attribute gsi9pk", "attribute gsi9sk", "index gsi9"]

    provisioned = _dynalite_table(dynalite_endpoint)
    capacity = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
    provisioned._call(
        "CreateTable",
        TableName=provisioned.name,
        AttributeDefinitions=SCHEMA.attribute_definitions(),
        KeySchema=SCHEMA.key_schema(),
        GlobalSecondaryIndexes=[
            {
                **index,
                "Projection": {"ProjectionType": "KEYS_ONLY"},
                "ProvisionedThroughput": capacity,
            }
            for index in SCHEMA.index_definitions()
        ],
        ProvisionedThroughput=capacity,
    )
    assert [str(d) for d in check_table(provisioned).differences] == [
        "index gsi1 projection: expected ALL, found KEYS_ONLY",
        "index gsi2 projection: expected INCLUDE (end_time, lifecycle_stage, user_id), "
        "found KEYS_ONLY",
        "billing mode: expected PAY_PER_REQUEST, found PROVISIONED",
    ]


@pytest.mark.parametrize("schema", [SCHEMA, TWO_INDEXES])
def test_a_schema_compared_with_its_own_request_matches(schema: TableSchema):
    request = schema.create_table_request("t")
    description = {
        "TableStatus": "ACTIVE",
        "KeySchema": request["KeySchema"],
        "AttributeDefinitions": request["AttributeDefinitions"],
        "GlobalSecondaryIndexes": request["GlobalSecondaryIndexes"],
        "BillingModeSummary": {"BillingMode": request["BillingMode"]},
        "StreamSpecification": request["StreamSpecification"],
    }
    ttl = {"TimeToLiveStatus": "ENABLED", "AttributeName": schema.ttl_attribute}
    backups = {"PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "ENABLED"}}
    assert compare(LiveTable(description, ttl, backups), schema, "t").matches
