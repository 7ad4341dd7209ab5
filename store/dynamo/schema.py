"""The table: THE one definition of its keys, attribute definitions, indexes (with their
projections), stream, TTL and billing. Table creation (`DynamoTable.ensure_table`) sends what
this module builds, a table that lacks an index is refused (`missing_indexes`), and the
deployment templates are checked against it (tests/deploy).

Local servers (dynalite, moto) get provisioned capacity and none of the stream, TTL and backup
settings, which they do not have.
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
    local_capacity_units: int = 1000  # read and write, per table and index, on a local server

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


def _ordered(schema: list[dict]) -> list[dict]:
    return sorted(schema, key=lambda k: k["KeyType"] != "HASH")
