"""DynamoDB capacity units per call, as the server reports them and as AWS bills index writes.

`CapacityMeter` wraps every DynamoDB request this process sends (any boto3 client: it sits on
botocore's `BaseClient._make_api_call`, so it needs nothing from the store's internals):

- each request asks `ReturnConsumedCapacity=INDEXES`; the read and write units the server answers
  are summed (dynalite applies DynamoDB's rules: a write costs 1 unit per KB of the larger of the
  old and new item, a read 1 unit per 4 KB, half when eventually consistent, index reads by the
  size of the index entries);
- dynalite reports no write units for global secondary indexes, and none for a write whose
  condition failed, both of which AWS bills. The meter computes them from the items before and
  after each write, read back with requests of its own (not counted), by AWS's rules: an index
  entry put, deleted or changed costs 1 unit per KB of the entry, a change of its index key two
  (delete + put), a write that changes no projected attribute nothing; a failed conditional write
  costs the larger of the existing and the new item.

    meter = CapacityMeter()
    with meter.installed():
        usage = meter.measure(lambda: store.log_metric(run_id, metric))
    usage.read_units, usage.write_units, usage.index_write_units, usage.requests
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from store.dynamo.values import float_to_dynamo, serialize_value

KB = 1024
_READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}
_UNMETERED = {"TransactWriteItems", "ExecuteStatement", "BatchExecuteStatement"}
_original_call = BaseClient._make_api_call


@dataclass(frozen=True)
class Usage:
    """What one measured call consumed."""

    requests: dict[str, int]
    read_units: float  # reported by the server (table + indexes)
    write_units: float  # reported by the server (table only)
    index_write_units: float  # computed: global secondary index writes, by AWS's rules
    failed_condition_units: float  # computed: conditional writes that failed (AWS bills them)
    bytes_returned: int  # size of the items the call got back (AWS item-size rules)
    unmetered: tuple[str, ...] = ()  # operations whose index writes could not be computed

    @property
    def request_count(self) -> int:
        return sum(self.requests.values())

    @property
    def total_write_units(self) -> float:
        return self.write_units + self.index_write_units + self.failed_condition_units


@dataclass
class _Tally:
    requests: Counter = field(default_factory=Counter)
    read_units: float = 0.0
    write_units: float = 0.0
    index_write_units: float = 0.0
    failed_condition_units: float = 0.0
    bytes_returned: int = 0
    unmetered: set = field(default_factory=set)

    def freeze(self) -> Usage:
        return Usage(
            dict(self.requests),
            self.read_units,
            self.write_units,
            self.index_write_units,
            self.failed_condition_units,
            self.bytes_returned,
            tuple(sorted(self.unmetered)),
        )


@dataclass(frozen=True)
class _Index:
    name: str
    keys: tuple[str, ...]  # partition key, then sort key if any
    projection: str  # ALL, KEYS_ONLY or INCLUDE
    included: frozenset[str]


@dataclass(frozen=True)
class _Schema:
    keys: tuple[str, ...]
    indexes: tuple[_Index, ...]


class CapacityMeter:
    """Counts requests and capacity units of every DynamoDB request sent while installed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tally: _Tally | None = None
        self._schemas: dict[str, _Schema] = {}

    @contextmanager
    def installed(self) -> Iterator[CapacityMeter]:
        meter = self

        def call(client: BaseClient, operation: str, params: dict) -> dict:
            if client.meta.service_model.service_name != "dynamodb":
                return _original_call(client, operation, params)
            return meter._metered(client, operation, params)

        BaseClient._make_api_call = call
        try:
            yield self
        finally:
            BaseClient._make_api_call = _original_call

    def measure(self, call: Callable[[], object]) -> Usage:
        """Run `call` and return what its DynamoDB requests consumed."""
        with self._lock:
            self._tally = _Tally()
        try:
            call()
        finally:
            with self._lock:
                tally, self._tally = self._tally, None
        return tally.freeze()

    # ---- one request ------------------------------------------------------------------------

    def _metered(self, client: BaseClient, operation: str, params: dict) -> dict:
        if self._tally is None or operation not in _READS | _WRITES | _UNMETERED:
            return _original_call(client, operation, params)
        params = {**params, "ReturnConsumedCapacity": "INDEXES"}
        touched = self._touched_keys(client, operation, params)
        before = self._images(client, touched)
        try:
            response = _original_call(client, operation, params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            with self._lock:
                self._tally.requests[operation] += 1
                if code == "ConditionalCheckFailedException":
                    new = params.get("Item")
                    sizes = [item_size(i) for i in (*before.values(), new) if i is not None]
                    self._tally.failed_condition_units += _write_units(max(sizes, default=0))
            raise
        after = self._after_images(client, operation, params, touched, before)
        index_units = sum(
            self._index_write_units(table, before[(table, key)], after[(table, key)])
            for table, key in touched
        )
        with self._lock:
            tally = self._tally
            tally.requests[operation] += 1
            if operation in _UNMETERED:
                tally.unmetered.add(operation)
            for consumed in _as_list(response.get("ConsumedCapacity")):
                units = float(consumed.get("CapacityUnits", 0))
                if operation in _READS:
                    tally.read_units += units
                else:
                    tally.write_units += units
            tally.index_write_units += index_units
            tally.bytes_returned += sum(item_size(item) for item in _returned_items(response))
        return response

    # ---- items before and after a write -----------------------------------------------------

    def _schema(self, client: BaseClient, table: str) -> _Schema:
        schema = self._schemas.get(table)
        if schema is None:
            described = _original_call(client, "DescribeTable", {"TableName": table})["Table"]
            indexes = tuple(
                _Index(
                    g["IndexName"],
                    tuple(k["AttributeName"] for k in _ordered_keys(g["KeySchema"])),
                    g["Projection"]["ProjectionType"],
                    frozenset(g["Projection"].get("NonKeyAttributes", ())),
                )
                for g in described.get("GlobalSecondaryIndexes", [])
            )
            keys = tuple(k["AttributeName"] for k in _ordered_keys(described["KeySchema"]))
            schema = self._schemas[table] = _Schema(keys, indexes)
        return schema

    def _touched_keys(self, client, operation: str, params: dict) -> list[tuple[str, tuple]]:
        """(table, key) of every item a write may change."""
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            table = params["TableName"]
            source = params["Item"] if operation == "PutItem" else params["Key"]
            return [(table, self._key_of(client, table, source))]
        if operation == "BatchWriteItem":
            touched = []
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    source = request.get("PutRequest", {}).get("Item") or request.get(
                        "DeleteRequest", {}
                    ).get("Key")
                    touched.append((table, self._key_of(client, table, source)))
            return touched
        return []

    def _key_of(self, client, table: str, item: dict) -> tuple:
        return tuple((name, _scalar(item[name])) for name in self._schema(client, table).keys)

    def _images(self, client, touched: list[tuple[str, tuple]]) -> dict:
        """The items at these keys now (strongly consistent; not counted)."""
        images: dict[tuple[str, tuple], dict | None] = {}
        for table, key in touched:
            if (table, key) in images:
                continue
            response = _original_call(
                client,
                "GetItem",
                {"TableName": table, "Key": _typed_key(key), "ConsistentRead": True},
            )
            images[(table, key)] = response.get("Item") or None
        return images

    def _after_images(self, client, operation: str, params: dict, touched, before) -> dict:
        if operation == "PutItem":
            return {touched[0]: params["Item"]}
        if operation == "DeleteItem":
            return {touched[0]: None}
        return self._images(client, touched) if touched else {}

    def _index_write_units(self, table: str, old: dict | None, new: dict | None) -> float:
        units = 0.0
        for index in self._schemas[table].indexes:
            was, now = (
                _entry(index, self._schemas[table], old),
                _entry(index, self._schemas[table], new),
            )
            if was is None and now is None:
                continue
            if was is None or now is None:
                units += _write_units(item_size(was or now))
            elif any(was.get(k) != now.get(k) for k in index.keys):
                units += _write_units(item_size(was)) + _write_units(item_size(now))
            elif was != now:
                units += _write_units(max(item_size(was), item_size(now)))
        return units


def _entry(index: _Index, schema: _Schema, item: dict | None) -> dict | None:
    """The index entry an item has (None when it lacks an index key: a sparse index)."""
    if item is None or any(k not in item for k in index.keys):
        return None
    if index.projection == "ALL":
        return item
    kept = set(schema.keys) | set(index.keys)
    if index.projection == "INCLUDE":
        kept |= index.included
    return {k: v for k, v in item.items() if k in kept}


# ---- DynamoDB item sizes (AWS's documented rules) --------------------------------------------


def item_size(item: dict | None) -> int:
    """Bytes an item counts for capacity: names and values, UTF-8, numbers by their digits."""
    if not item:
        return 0
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def plain_item_size(item: dict) -> int:
    """`item_size(serialize_item(item))` of a plain item (str, numbers, maps, lists), without
    building the typed item: a metric write sizes the bucket it leaves on every call."""
    return sum(len(name.encode()) + _plain_size(value) for name, value in item.items())


def _plain_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, float):
        value = float_to_dynamo(value)
        if isinstance(value, str):
            return len(value.encode())
    if isinstance(value, int | Decimal):
        return _number_size(str(value))
    if isinstance(value, dict):
        return 3 + sum(1 + len(k.encode()) + _plain_size(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return 3 + sum(1 + _plain_size(v) for v in value)
    return _value_size(serialize_value(value))


def _value_size(value: dict) -> int:
    ((kind, body),) = value.items()
    if kind == "S":
        return len(body.encode())
    if kind == "B":
        return len(body) if isinstance(body, bytes | bytearray) else math.ceil(len(body) * 3 / 4)
    if kind == "N":
        return _number_size(body)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode()) for v in body)
    if kind == "NS":
        return sum(_number_size(v) for v in body)
    if kind == "BS":
        return sum(len(v) for v in body)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in body)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in body.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def _number_size(text: str) -> int:
    """1 byte per two significant digits + 1, as DynamoDB (and dynalite) size numbers."""
    number = Decimal(text).normalize()
    if number == 0:
        return 1
    digits = len(number.as_tuple().digits)
    aligned = 0 if digits % 2 or number.adjusted() % 2 else 1
    return 1 + math.ceil(digits / 2) + aligned + (1 if number < 0 else 0)


def _write_units(size: int) -> float:
    return float(max(1, math.ceil(size / KB)))


def _returned_items(response: dict) -> Iterator[dict]:
    if response.get("Item"):
        yield response["Item"]
    yield from response.get("Items") or ()
    for items in (response.get("Responses") or {}).values():
        yield from items


def _as_list(consumed) -> list[dict]:
    if consumed is None:
        return []
    return consumed if isinstance(consumed, list) else [consumed]


def _ordered_keys(schema: list[dict]) -> list[dict]:
    return sorted(schema, key=lambda k: k["KeyType"] != "HASH")


def _scalar(value: dict) -> tuple[str, Any]:
    ((kind, body),) = value.items()
    return kind, body


def _typed_key(key: tuple) -> dict:
    return {name: {kind: body} for name, (kind, body) in key}
