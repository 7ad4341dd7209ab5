"""A live table compared with the schema (store/dynamo/schema.py): what `cedarflow table check`
prints, and why `cedarflow serve` refuses a table.

The live table is read with DescribeTable, DescribeTimeToLive and DescribeContinuousBackups.
Every setting the schema defines is compared: the key, the attribute definitions, each global
secondary index (keys, projection, status), the billing mode, the stream, the TTL attribute and
point-in-time recovery. An index, a local index or an attribute definition the schema does not
have is a difference too.

A local server that keeps no stream, TTL or backup settings (dynalite: it answers
DescribeContinuousBackups with UnknownOperationException, reports TTL as DISABLED whatever was
asked and drops the stream specification) cannot report them: on such a server, and only on a
local endpoint, those three settings are listed as not checked instead of compared. Keys,
attribute definitions, indexes and billing mode are compared on every server. moto and AWS
report everything, so everything is compared there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from store.dynamo.errors import error_code
from store.dynamo.schema import SCHEMA, TableSchema
from store.dynamo.table import DynamoTable
from store.dynamo.uri import format_dynamo_uri

# Table states in which every request of the stores is served (UPDATING: a replica, billing
# or stream change under way).
_SERVING_STATES = frozenset({"ACTIVE", "UPDATING"})
# TTL being switched on is what was asked; DynamoDB takes up to an hour to finish it.
_TTL_ON = frozenset({"ENABLED", "ENABLING"})
NOT_OFFERED_LOCALLY = ("stream", "TTL", "point-in-time recovery")
_NO_TABLE = "no such table"


@dataclass(frozen=True)
class Difference:
    """One setting where the live table is not what the schema defines."""

    setting: str
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.setting}: expected {self.expected}, found {self.found}"


@dataclass(frozen=True)
class LiveTable:
    """What the server reports about a table. `ttl` and `backups` are None on a local server
    that keeps no such settings (see the module's notes)."""

    description: dict[str, Any]
    ttl: dict[str, Any] | None
    backups: dict[str, Any] | None

    @property
    def reports_every_setting(self) -> bool:
        return self.backups is not None


@dataclass(frozen=True)
class TableReport:
    """The outcome of a check: the differences, and the settings this server cannot report."""

    table: str
    differences: tuple[Difference, ...]
    not_checked: tuple[str, ...] = ()
    uri: str = ""  # the `--table` value that names the table in the commands of `summary`

    @property
    def matches(self) -> bool:
        return not self.differences

    @property
    def missing(self) -> bool:
        return any(d.setting == "table" and d.found == _NO_TABLE for d in self.differences)

    @property
    def summary(self) -> str:
        """One line: the table matches, is missing (naming the command that creates it), or
        differs (each difference, and the commands that list and complete them)."""
        uri = self.uri or f"dynamodb:///{self.table}"
        if self.missing:
            return (
                f"DynamoDB table {self.table} does not exist: "
                f"create it with `cedarflow table create --table {uri}`"
            )
        if not self.differences:
            unreported = f" ({', '.join(self.not_checked)}: not kept by this server)"
            return f"DynamoDB table {self.table} matches the schema" + (
                unreported if self.not_checked else ""
            )
        return (
            f"DynamoDB table {self.table} does not match the schema: "
            + "; ".join(str(d) for d in self.differences)
            + f" (`cedarflow table create --table {uri}` adds a missing stream, TTL or "
            f"point-in-time recovery; `cedarflow table check --table {uri}` lists what differs)"
        )


def table_differences(table: DynamoTable | str, schema: TableSchema = SCHEMA) -> list[Difference]:
    """Every difference between the table (a DynamoTable or a `dynamodb://` URI) and the
    schema; a missing table is one difference. Empty when the table matches."""
    return list(check_table(table, schema).differences)


def check_table(table: DynamoTable | str, schema: TableSchema = SCHEMA) -> TableReport:
    """The live table (a DynamoTable or a `dynamodb://` URI) compared with the schema; raises
    botocore's errors when the table cannot be read (no credentials, no access, no server)."""
    table = DynamoTable.from_uri(table) if isinstance(table, str) else table
    uri = format_dynamo_uri(table.location)
    live = describe_table(table)
    if live is None:
        missing = Difference("table", f"a table named {table.name}", _NO_TABLE)
        return TableReport(table.name, (missing,), uri=uri)
    return dataclasses.replace(compare(live, schema, table.name), uri=uri)


def describe_table(table: DynamoTable) -> LiveTable | None:
    """DescribeTable, DescribeTimeToLive and DescribeContinuousBackups; None: no such table."""
    try:
        description = table._call("DescribeTable", TableName=table.name)["Table"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    try:
        backups = table._call("DescribeContinuousBackups", TableName=table.name)
    except ClientError as exc:
        if not (table.location.is_local and error_code(exc) == "UnknownOperationException"):
            raise
        return LiveTable(description, ttl=None, backups=None)
    ttl = table._call("DescribeTimeToLive", TableName=table.name)
    return LiveTable(
        description,
        ttl=ttl.get("TimeToLiveDescription", {}),
        backups=backups.get("ContinuousBackupsDescription", {}),
    )


def compare(live: LiveTable, schema: TableSchema, name: str) -> TableReport:
    """The differences between a described table and the schema (no request sent)."""
    table = live.description
    differences = [
        *_status(table),
        *_key(table, schema),
        *_attributes(table, schema),
        *_indexes(table, schema),
        *_local_indexes(table),
        *_billing(table, schema),
    ]
    not_checked: tuple[str, ...] = ()
    if live.reports_every_setting:
        differences += [*_stream(table, schema), *_ttl(live, schema), *_backups(live, schema)]
    else:
        not_checked = NOT_OFFERED_LOCALLY
    return TableReport(name, tuple(differences), not_checked)


# ---- one setting each -----------------------------------------------------------------------


def _status(table: dict) -> list[Difference]:
    status = table.get("TableStatus", "unknown")
    if status in _SERVING_STATES:
        return []
    return [Difference("table status", "ACTIVE", status)]


def _key(table: dict, schema: TableSchema) -> list[Difference]:
    expected, found = _keys(schema.key_schema()), _keys(table.get("KeySchema", []))
    if expected == found:
        return []
    return [Difference("primary key", expected, found or "none")]


def _attributes(table: dict, schema: TableSchema) -> list[Difference]:
    expected = _attribute_types(schema.attribute_definitions())
    found = _attribute_types(table.get("AttributeDefinitions", []))
    return [
        Difference(
            f"attribute {name}",
            f"type {expected[name]}" if name in expected else "no definition",
            f"type {found[name]}" if name in found else "no definition",
        )
        for name in sorted(expected.keys() | found.keys())
        if expected.get(name) != found.get(name)
    ]


def _indexes(table: dict, schema: TableSchema) -> list[Difference]:
    expected = {index["IndexName"]: index for index in schema.index_definitions()}
    found = {index["IndexName"]: index for index in table.get("GlobalSecondaryIndexes") or []}
    differences = []
    for name in sorted(expected.keys() | found.keys()):
        setting = f"index {name}"
        if name not in found:
            differences.append(Difference(setting, _index_text(expected[name]), "no such index"))
        elif name not in expected:
            differences.append(Difference(setting, "no such index", _index_text(found[name])))
        else:
            differences += _index(setting, expected[name], found[name])
    return differences


def _index(setting: str, expected: dict, found: dict) -> list[Difference]:
    differences = []
    if _keys(expected["KeySchema"]) != _keys(found.get("KeySchema", [])):
        keys = _keys(found.get("KeySchema", [])) or "none"
        differences.append(Difference(f"{setting} key", _keys(expected["KeySchema"]), keys))
    wanted, have = _projection(expected), _projection(found)
    if wanted != have:
        differences.append(Difference(f"{setting} projection", wanted, have))
    status = found.get("IndexStatus", "ACTIVE")  # a local server may leave it out
    if status != "ACTIVE":  # CREATING: still backfilling, queries miss items
        differences.append(Difference(f"{setting} status", "ACTIVE", status))
    return differences


def _local_indexes(table: dict) -> list[Difference]:
    return [
        Difference(f"local index {index['IndexName']}", "no such index", _index_text(index))
        for index in table.get("LocalSecondaryIndexes") or []
    ]


def _billing(table: dict, schema: TableSchema) -> list[Difference]:
    # DynamoDB leaves the summary out for a table that was always provisioned.
    found = (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    if found == schema.billing_mode:
        return []
    return [Difference("billing mode", schema.billing_mode, found)]


def _stream(table: dict, schema: TableSchema) -> list[Difference]:
    stream = table.get("StreamSpecification") or {}
    found = stream.get("StreamViewType", "") if stream.get("StreamEnabled") else ""
    if found == schema.stream_view_type:
        return []
    return [Difference("stream", f"{schema.stream_view_type} images", found or "no stream")]


def _ttl(live: LiveTable, schema: TableSchema) -> list[Difference]:
    ttl = live.ttl or {}
    status, attribute = ttl.get("TimeToLiveStatus", "DISABLED"), ttl.get("AttributeName")
    if status in _TTL_ON and attribute == schema.ttl_attribute:
        return []
    found = f"{status} on attribute {attribute}" if attribute else status
    return [Difference("TTL", f"ENABLED on attribute {schema.ttl_attribute}", found)]


def _backups(live: LiveTable, schema: TableSchema) -> list[Difference]:
    recovery = (live.backups or {}).get("PointInTimeRecoveryDescription") or {}
    found = recovery.get("PointInTimeRecoveryStatus", "DISABLED")
    expected = "ENABLED" if schema.point_in_time_recovery else "DISABLED"
    if found == expected:
        return []
    return [Difference("point-in-time recovery", expected, found)]


# ---- how settings read ----------------------------------------------------------------------


def _keys(key_schema: list[dict]) -> str:
    """`pk (HASH), sk (RANGE)`, in the schema's order."""
    return ", ".join(f"{key['AttributeName']} ({key['KeyType']})" for key in key_schema)


def _attribute_types(definitions: list[dict]) -> dict[str, str]:
    return {d["AttributeName"]: d["AttributeType"] for d in definitions}


def _projection(index: dict) -> str:
    projection = index.get("Projection") or {}
    kind = projection.get("ProjectionType", "none")
    extra = sorted(projection.get("NonKeyAttributes") or [])
    return f"{kind} ({', '.join(extra)})" if extra else kind


def _index_text(index: dict) -> str:
    return f"key {_keys(index.get('KeySchema', []))}, projection {_projection(index)}"
