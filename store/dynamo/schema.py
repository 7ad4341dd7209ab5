"""The table: THE one definition of its keys, attribute definitions, indexes (with their
projections), stream, TTL, billing and backups. Table creation (store/dynamo/provision.py)
sends what this module builds, `cedarflow table check` (store/dynamo/check.py) compares a live
table with it, a store refuses a table that lacks an index (`missing_indexes`), and the
deployment templates are checked against it (tests/deploy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GSI1 = "gsi1"
GSI2 = "gsi2"


@dataclass(frozen=True)
class IndexSchema:
    """One global secondary index: its string keys and what its entries carry."""

    name: str
    keys: tuple[str, str]  # (hash, range)
    projection: str  # ALL, KEYS_ONLY or INCLUDE
    included: tuple[str, ...] = ()  # the non-key attributes of an INCLUDE projection

    def definition(self) -> dict[str, Any]:
        projection: dict[str, Any] = {"ProjectionType": self.projection}
        if self.included:
            projection["NonKeyAttributes"] = list(self.included)
        return {
            "IndexName": self.name,
            "KeySchema": _key_schema(self.keys),
            "Projection": projection,
        }


def _indexes() -> tuple[IndexSchema, ...]:
    return (
        # "The children of a parent": experiments, logged models, traces, registry, deleted runs.
        IndexSchema(GSI1, ("gsi1pk", "gsi1sk"), "ALL"),
        # The filter index: one column per (experiment, param / tag key) sorted by value, the
        # run-status column (whose entries carry the attributes searches read), deleted models.
        IndexSchema(
            GSI2, ("gsi2pk", "gsi2sk"), "INCLUDE", ("lifecycle_stage", "end_time", "user_id")
        ),
    )


@dataclass(frozen=True)
class TableSchema:
    """One table for every store: string keys, two sparse indexes."""

    key: tuple[str, str] = ("pk", "sk")  # (hash, range)
    indexes: tuple[IndexSchema, ...] = field(default_factory=_indexes)
    billing_mode: str = "PAY_PER_REQUEST"
    stream_view_type: str = "NEW_AND_OLD_IMAGES"
    ttl_attribute: str = "ttl"
    point_in_time_recovery: bool = True

    def index(self, name: str) -> IndexSchema:
        return next(index for index in self.indexes if index.name == name)

    def attribute_definitions(self) -> list[dict[str, str]]:
        names = [*self.key, *(name for index in self.indexes for name in index.keys)]
        return [{"AttributeName": name, "AttributeType": "S"} for name in dict.fromkeys(names)]

    def key_schema(self) -> list[dict[str, str]]:
        return _key_schema(self.key)

    def index_definitions(self) -> list[dict[str, Any]]:
        return [index.definition() for index in self.indexes]

    def missing_indexes(self, described: dict) -> list[str]:
        """The indexes of this schema a DescribeTable answer lacks or has with other keys or
        another projection: such a table cannot serve the stores."""
        found = {
            index["IndexName"]: (
                tuple(k["AttributeName"] for k in _ordered(index["KeySchema"])),
                index.get("Projection", {}).get("ProjectionType"),
                frozenset(index.get("Projection", {}).get("NonKeyAttributes", ())),
            )
            for index in described.get("GlobalSecondaryIndexes", [])
        }
        return [
            index.name
            for index in self.indexes
            if found.get(index.name) != (index.keys, index.projection, frozenset(index.included))
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


def _ordered(schema: list[dict]) -> list[dict]:
    return sorted(schema, key=lambda k: k["KeyType"] != "HASH")
