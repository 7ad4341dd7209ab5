"""The table: THE one definition of its keys, attribute definitions, index, stream, TTL and
billing. Table creation (`DynamoTable.ensure_table`) sends what this module builds, and the
deployment templates are checked against it (tests/deploy).

Local servers (dynalite, moto) get provisioned capacity and none of the stream, TTL and backup
settings, which they do not have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GSI1 = "gsi1"


@dataclass(frozen=True)
class TableSchema:
    """One table for every store: string keys, one index for "the children of a parent"."""

    key: tuple[str, str] = ("pk", "sk")  # (hash, range)
    indexes: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {GSI1: ("gsi1pk", "gsi1sk")}
    )
    projection: str = "ALL"
    billing_mode: str = "PAY_PER_REQUEST"
    stream_view_type: str = "NEW_AND_OLD_IMAGES"
    ttl_attribute: str = "ttl"
    point_in_time_recovery: bool = True
    local_capacity_units: int = 1000  # read and write, per table and index, on a local server

    def attribute_definitions(self) -> list[dict[str, str]]:
        names = [*self.key, *(name for keys in self.indexes.values() for name in keys)]
        return [{"AttributeName": name, "AttributeType": "S"} for name in dict.fromkeys(names)]

    def key_schema(self) -> list[dict[str, str]]:
        return _key_schema(self.key)

    def index_definitions(self) -> list[dict[str, Any]]:
        return [
            {
                "IndexName": name,
                "KeySchema": _key_schema(keys),
                "Projection": {"ProjectionType": self.projection},
            }
            for name, keys in self.indexes.items()
        ]

    def create_table_request(self, table_name: str, *, local: bool) -> dict[str, Any]:
        """The CreateTable request: on AWS on-demand with a stream, on a local server
        provisioned (what it demands) without one."""
        request: dict[str, Any] = {
            "TableName": table_name,
            "AttributeDefinitions": self.attribute_definitions(),
            "KeySchema": self.key_schema(),
            "GlobalSecondaryIndexes": self.index_definitions(),
        }
        if local:
            units = self.local_capacity_units
            capacity = {"ReadCapacityUnits": units, "WriteCapacityUnits": units}
            request["ProvisionedThroughput"] = capacity
            for index in request["GlobalSecondaryIndexes"]:
                index["ProvisionedThroughput"] = dict(capacity)
        else:
            request["BillingMode"] = self.billing_mode
            request["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": self.stream_view_type,
            }
        return request

    def time_to_live_request(self, table_name: str) -> dict[str, Any]:
        """UpdateTimeToLive, sent once the table is ACTIVE (AWS only)."""
        return {
            "TableName": table_name,
            "TimeToLiveSpecification": {"Enabled": True, "AttributeName": self.ttl_attribute},
        }

    def backups_request(self, table_name: str) -> dict[str, Any]:
        """UpdateContinuousBackups (point-in-time recovery), once the table is ACTIVE (AWS only)."""
        return {
            "TableName": table_name,
            "PointInTimeRecoverySpecification": {
                "PointInTimeRecoveryEnabled": self.point_in_time_recovery
            },
        }


SCHEMA = TableSchema()


def _key_schema(keys: tuple[str, str]) -> list[dict[str, str]]:
    hash_name, range_name = keys
    return [
        {"AttributeName": hash_name, "KeyType": "HASH"},
        {"AttributeName": range_name, "KeyType": "RANGE"},
    ]
