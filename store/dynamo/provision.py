"""Creating the table as the schema defines it (`cedarflow table create`, and the local stack).

One CreateTable request on every server: on-demand billing, the stream, the key, the attribute
definitions and every global secondary index of store/dynamo/schema.py. Once the table is ACTIVE,
the settings CreateTable cannot carry follow where the server offers them: the TTL attribute
(UpdateTimeToLive) and point-in-time recovery (UpdateContinuousBackups). dynalite offers neither
(nor streams: it drops the specification); check.py says so instead of comparing them.

Idempotent: an existing table is left as it is, except that a setting it lacks altogether (no
TTL, no stream, recovery off: what an interrupted creation or a point-in-time restore leaves) is
switched on. A setting that is there with another value (another key, index, billing mode, TTL
attribute or stream view) is never changed: the report lists it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from botocore.exceptions import ClientError

from store.dynamo.check import TableReport, check_table, describe_table
from store.dynamo.errors import error_code
from store.dynamo.schema import SCHEMA, TableSchema
from store.dynamo.table import DynamoTable

_ACTIVE_TIMEOUT_S = 600.0  # a new table with its indexes is ACTIVE within a minute or two on AWS
_POLL_S = 0.2
_BACKUPS_RETRY_S = 5.0

Say = Callable[[str], None]


def create_table(
    table: DynamoTable | str, schema: TableSchema = SCHEMA, say: Say | None = None
) -> TableReport:
    """Create the table unless it exists, switch on what it lacks, and check it."""
    table = DynamoTable.from_uri(table) if isinstance(table, str) else table
    say = say or _quiet
    if _description(table) is None:
        say(f"creating table {table.name}")
        _send_create(table, schema)
    wait_until_active(table)
    _switch_on_missing_settings(table, schema, say)
    return check_table(table, schema)


def ensure_table(table: DynamoTable, schema: TableSchema = SCHEMA) -> None:
    """Create the table when it is missing (with every setting) and wait until it is ACTIVE;
    an existing table is only waited for (DescribeTable alone). What the stores and the local
    stack call."""
    description = _description(table)
    if description is not None:
        if not _active(description):
            wait_until_active(table)
        table.check_schema(description)
        return
    _send_create(table, schema)
    wait_until_active(table)
    _switch_on_missing_settings(table, schema, _quiet)


def wait_until_active(table: DynamoTable, timeout: float = _ACTIVE_TIMEOUT_S) -> None:
    """Return once the table and each of its indexes are ACTIVE."""
    deadline = time.monotonic() + timeout
    while True:
        description = _description(table)
        if description is not None and _active(description):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"DynamoDB table {table.name} is not ACTIVE after {timeout:.0f} s")
        time.sleep(_POLL_S)


def _send_create(table: DynamoTable, schema: TableSchema) -> None:
    try:
        table._call("CreateTable", **schema.create_table_request(table.name))
    except ClientError as exc:
        if error_code(exc) != "ResourceInUseException":  # created by a concurrent starter
            raise


def _description(table: DynamoTable) -> dict | None:
    try:
        return table._call("DescribeTable", TableName=table.name)["Table"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def _switch_on_missing_settings(table: DynamoTable, schema: TableSchema, say: Say) -> None:
    live = describe_table(table)
    if live is None or not live.reports_every_setting:
        return  # a local server without streams, TTL or backups
    stream = live.description.get("StreamSpecification") or {}
    if not stream.get("StreamEnabled"):
        say(f"switching on the stream ({schema.stream_view_type})")
        table._call("UpdateTable", **schema.stream_request(table.name))
        wait_until_active(table)
    if (live.ttl or {}).get("TimeToLiveStatus", "DISABLED") == "DISABLED":
        say(f"switching on TTL (attribute {schema.ttl_attribute})")
        table._call("UpdateTimeToLive", **schema.time_to_live_request(table.name))
    recovery = (live.backups or {}).get("PointInTimeRecoveryDescription") or {}
    if schema.point_in_time_recovery and recovery.get("PointInTimeRecoveryStatus") != "ENABLED":
        say("switching on point-in-time recovery")
        _switch_on_backups(table, schema)


def _switch_on_backups(table: DynamoTable, schema: TableSchema) -> None:
    # AWS refuses recovery for a while after a table is created ("backups are being enabled").
    deadline = time.monotonic() + _ACTIVE_TIMEOUT_S
    while True:
        try:
            table._call("UpdateContinuousBackups", **schema.backups_request(table.name))
            return
        except ClientError as exc:
            busy = error_code(exc) == "ContinuousBackupsUnavailableException"
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(_BACKUPS_RETRY_S)


def _active(description: dict) -> bool:
    indexes = description.get("GlobalSecondaryIndexes") or []
    return description.get("TableStatus") == "ACTIVE" and all(
        index.get("IndexStatus", "ACTIVE") == "ACTIVE" for index in indexes
    )


def _quiet(_: str) -> None:
    pass
