"""The table: THE one definition of its keys, attribute definitions, indexes, stream, TTL,
billing and backups. Table creation (store/dynamo/provision.py) sends what this module builds,
`cedarflow table check` (store/dynamo/check.py) compares a live table with it, and the
deployment templates are checked against it (tests/deploy).
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

    def create_table_request(self, table_name: str) -> dict[str, Any]:
        """The CreateTable request, the same on every server (dynalite drops the stream)."""
        return {
            "TableName": table_name,
            "AttributeDefinitions": self.attribute_definitions(),
            "KeySchema": self.key_schema(),
            "GlobalSecondaryIndexes": self.index_definitions(),
            "BillingMode": self.billing_mode,
            "StreamSpecification": self.stream_specification(),
        }

    def stream_specification(self) -> dict[str, Any]:
        return {"StreamEnabled": True, "StreamViewType": self.stream_view_type}

    def stream_request(self, table_name: str) -> dict[str, Any]:
        """UpdateTable switching the stream on (a table restored to a point in time has none)."""
        return {"TableName": table_name, "StreamSpecification": self.stream_specification()}

    def time_to_live_request(self, table_name: str) -> dict[str, Any]:
        """UpdateTimeToLive, sent once the table is ACTIVE (where the server offers TTL)."""
        return {
            "TableName": table_name,
            "TimeToLiveSpecification": {"Enabled": True, "AttributeName": self.ttl_attribute},
        }

    def backups_request(self, table_name: str) -> dict[str, Any]:
        """UpdateContinuousBackups (point-in-time recovery), once the table is ACTIVE."""
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
