"""One DynamoDB table behind a small, typed, thread-safe surface: every request of the stores
goes through `DynamoTable._call`.

Items are plain dicts of Python values (store/dynamo/values.py converts them); every request is
counted and retried (store/dynamo/client.py), and refusals and failures become the store's
exceptions (store/dynamo/errors.py). It uses only
the operations every DynamoDB-compatible server offers (no transactions, PartiQL or streams).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from store.dynamo.client import RoundTrips, exhausted, make_client, sleep_backoff
from store.dynamo.errors import (
    ConditionFailed,
    StoreUnavailable,
    TableSchemaMismatch,
    error_code,
    error_of,
    unavailable,
    within_item_limit,
)
from store.dynamo.expressions import Update
from store.dynamo.schema import SCHEMA
from store.dynamo.uri import DynamoUri, parse_dynamo_uri
from store.dynamo.values import deserialize_item, serialize_item, serialize_values

BATCH_WRITE_SIZE = 25
BATCH_GET_SIZE = 100
PARALLEL_BATCH_WRITES = 8  # BatchWriteItem requests in flight at once for one call
PARALLEL_REQUESTS = 16  # independent requests of one call in flight at once (`fan_out`)

# ---- the table ----------------------------------------------------------------------------------

_tables: dict[tuple[str, int], DynamoTable] = {}
_tables_lock = threading.Lock()


class DynamoTable:
    """One DynamoDB table and one boto3 low-level client (thread-safe) for it."""

    def __init__(self, location: DynamoUri) -> None:
        self.location = location
        self.name = location.table
        self.round_trips = RoundTrips()
        self._client = make_client(location, self.round_trips)
        self.parallel_writes = PARALLEL_BATCH_WRITES
        self._writer_pool: ThreadPoolExecutor | None = None
        self._fan_out_pools: list[ThreadPoolExecutor] = []
        self._writers_lock = threading.Lock()

    @classmethod
    def from_uri(cls, uri: str) -> DynamoTable:
        """The table for `uri`, cached per (uri, process) so a process has one client per table."""
        key = (uri, os.getpid())
        with _tables_lock:
            table = _tables.get(key)
            if table is None:
                table = cls(parse_dynamo_uri(uri))
                _tables[key] = table
            return table

    # -- schema --

    def ensure_table(self) -> None:
        """Create the table if missing (idempotent) and wait until it is ACTIVE
        (store/dynamo/provision.py: the schema's table, every setting the server offers); a table
        that lacks an index of the schema is refused (TableSchemaMismatch)."""
        from store.dynamo.provision import ensure_table  # provision builds on this module

        ensure_table(self)

    def check_schema(self, described: dict) -> None:
        """Refuse a table whose indexes are not the schema's (one created by an earlier build):
        DynamoDB-compatible local servers cannot add an index to an existing table."""
        missing = SCHEMA.missing_indexes(described)
        if missing:
            raise TableSchemaMismatch(
                f"DynamoDB table {self.name} lacks the index {', '.join(missing)} this version "
                "needs (created by an earlier Cedarflow): create a new table with "
                "`cedarflow table create` (local stack: remove DATA/dynamodb) and point the "
                "store at it."
            )

    # -- single items --

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> dict | None:
        response = self._call(
            "GetItem",
            TableName=self.name,
            Key=_key(pk, sk),
            ConsistentRead=consistent,
        )
        item = response.get("Item")
        return deserialize_item(item) if item else None

    def put(
        self,
        item: dict,
        *,
        condition: str | None = None,
        names: dict | None = None,
        values: dict | None = None,
    ) -> None:
        request = {"TableName": self.name, "Item": serialize_item(item)}
        self._call("PutItem", **_with_expressions(request, condition, names, values))

    def update(self, pk: str, sk: str, update: Update) -> dict:
        """Apply `update` (store/dynamo/expressions.py) to one item; returns the item after it
        (or before it, as `update.returns` asks)."""
        request = {
            "TableName": self.name,
            "Key": _key(pk, sk),
            "UpdateExpression": update.expression(),
            "ReturnValues": update.returns,
        }
        request = _with_expressions(request, update.condition(), update.names, update.values)
        response = self._call("UpdateItem", **request)
        return deserialize_item(response.get("Attributes", {}))

    def update_existing(
        self, pk: str, sk: str, update: Update, *, missing: Exception, what: str, advice: str = ""
    ) -> dict:
        """`update`, raising `missing` when its condition fails; an item it would take past
        400 KB is the caller's error naming `what` (store/dynamo/errors.py)."""
        try:
            with within_item_limit(what, advice):
                return self.update(pk, sk, update)
        except ConditionFailed:
            raise missing from None

    def delete(
        self,
        pk: str,
        sk: str,
        *,
        condition: str | None = None,
        names: dict | None = None,
        values: dict | None = None,
    ) -> None:
        request = {"TableName": self.name, "Key": _key(pk, sk)}
        self._call("DeleteItem", **_with_expressions(request, condition, names, values))

    # -- many items --

    def query(
        self,
        pk: str,
        *,
        sk_prefix: str | None = None,
        sk_range: tuple[str | None, str | None] | None = None,
        index: str | None = None,
        forward: bool = True,
        limit: int | None = None,
        page_size: int | Callable[[], int] | None = None,
        consistent: bool = False,
        attributes: Iterable[Sequence[str]] | None = None,
    ) -> Iterator[dict]:
        """Items of one partition in sort-key order; pages are fetched lazily as you iterate.

        `sk_range`: sort keys between the two bounds, both included (None: open on that side).
        `attributes`: only these attribute paths (e.g. `("params", "lr")`) are returned.
        `page_size`: items in the first request, doubled for each next one (a reader that may
        stop early pays for few items, and one that reads on soon gets full 1 MB pages); or a
        function giving the items of each request, called just before it is sent.
        """
        if sk_prefix is not None and sk_range is not None:
            raise ValueError("Give sk_prefix or sk_range, not both")
        pk_name, sk_name = SCHEMA.index(index).keys if index is not None else SCHEMA.key
        condition = "#pk = :pk"
        names = {"#pk": pk_name}
        values: dict[str, Any] = {":pk": {"S": pk}}
        if sk_prefix is not None:
            condition += " AND begins_with(#sk, :prefix)"
            names["#sk"] = sk_name
            values[":prefix"] = {"S": sk_prefix}
        elif sk_range is not None and sk_range != (None, None):
            low, high = sk_range
            names["#sk"] = sk_name
            if low is not None:
                values[":low"] = {"S": low}
            if high is not None:
                values[":high"] = {"S": high}
            if low is not None and high is not None:
                condition += " AND #sk BETWEEN :low AND :high"
            else:
                condition += " AND #sk >= :low" if low is not None else " AND #sk <= :high"
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": forward,
        }
        if index is not None:
            request["IndexName"] = index
        else:
            request["ConsistentRead"] = consistent  # GSIs offer eventual consistency only
        if attributes is not None:
            request["ProjectionExpression"] = _projection(attributes, names)
        return self._query_pages(request, limit, page_size)

    def _query_pages(
        self, request: dict, limit: int | None, page_size: int | Callable[[], int] | None
    ) -> Iterator[dict]:
        remaining = limit
        while True:
            size = page_size() if callable(page_size) else page_size
            sizes = [n for n in (remaining, size) if n is not None]
            if sizes:
                request["Limit"] = min(sizes)
            response = self._call("Query", **request)
            for raw in response.get("Items", []):
                yield deserialize_item(raw)
                if remaining is not None:
                    remaining -= 1
            start = response.get("LastEvaluatedKey")
            if not start or (remaining is not None and remaining <= 0):
                return
            request["ExclusiveStartKey"] = start
            if page_size is not None and not callable(page_size):
                page_size *= 2

    def batch_write(
        self, puts: Iterable[dict] = (), deletes: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Write in chunks of 25, several chunks at once; a key repeated in one call is written
        by a later chunk (after the earlier ones), so the last write of a key wins."""
        requests = [("put", item, (item["pk"], item["sk"])) for item in puts]
        requests += [("delete", None, key) for key in deletes]
        waves = _waves_without_duplicate_keys(requests, BATCH_WRITE_SIZE, self.parallel_writes)
        for wave in waves:
            if len(wave) == 1:
                self._write_chunk(wave[0])
                continue
            for future in [self._writers().submit(self._write_chunk, c) for c in wave]:
                future.result()

    def _write_chunk(self, chunk: list) -> None:
        pending = {
            self.name: [
                {"PutRequest": {"Item": serialize_item(item)}}
                if kind == "put"
                else {"DeleteRequest": {"Key": _key(*key)}}
                for kind, item, key in chunk
            ]
        }
        attempt = 0
        while pending:
            response = self._call("BatchWriteItem", RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if pending:
                attempt += 1
                sleep_backoff(attempt, "BatchWriteItem")

    def fan_out(self, calls: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run independent calls (each a few requests) together, up to PARALLEL_REQUESTS at
        once; results in order, the first exception raised.

        A fanned-out call may fan out once more (each level has its own pool, so no pool ever
        waits on itself); deeper calls, and every call on a table limited to one request at a
        time (`parallel_writes = 1`: moto in process is not thread-safe), run one by one."""
        depth = getattr(_fanning, "depth", 0)
        if len(calls) <= 1 or self.parallel_writes <= 1 or depth >= _FAN_OUT_LEVELS:
            return [call() for call in calls]
        with self._writers_lock:
            if not self._fan_out_pools:
                self._fan_out_pools = [
                    ThreadPoolExecutor(PARALLEL_REQUESTS, f"dynamo-fan-out-{level}")
                    for level in range(_FAN_OUT_LEVELS)
                ]
            pool = self._fan_out_pools[depth]
        # The first call runs in this thread, which would otherwise only wait: one hand-off
        # fewer. Its own fan-out, if any, uses this level's pool, whose calls never wait on it.
        futures = [pool.submit(_fanned, call, depth + 1) for call in calls[1:]]
        first = calls[0]()
        return [first, *(future.result() for future in futures)]

    def _writers(self) -> ThreadPoolExecutor:
        with self._writers_lock:
            if self._writer_pool is None:
                self._writer_pool = ThreadPoolExecutor(self.parallel_writes, "dynamo-batch")
            return self._writer_pool

    def batch_get(self, keys: Iterable[tuple[str, str]], *, consistent: bool = True) -> list[dict]:
        """Items for the keys that exist (any order), 100 keys per request, the requests in
        parallel (`fan_out`)."""
        unique = list(dict.fromkeys(keys))
        chunks = [unique[i : i + BATCH_GET_SIZE] for i in range(0, len(unique), BATCH_GET_SIZE)]
        calls = [partial(self._get_chunk, chunk, consistent) for chunk in chunks]
        return [item for found in self.fan_out(calls) for item in found]

    def _get_chunk(self, keys: list[tuple[str, str]], consistent: bool) -> list[dict]:
        pending = {
            self.name: {"Keys": [_key(pk, sk) for pk, sk in keys], "ConsistentRead": consistent}
        }
        found: list[dict] = []
        attempt = 0
        while pending:
            response = self._call("BatchGetItem", RequestItems=pending)
            found += [deserialize_item(i) for i in response["Responses"].get(self.name, [])]
            pending = response.get("UnprocessedKeys") or {}
            if pending:
                attempt += 1
                sleep_backoff(attempt, "BatchGetItem")
        return found

    def describe(self) -> dict | None:
        """DescribeTable: the table's description, None when it is missing."""
        try:
            return self._call("DescribeTable", TableName=self.name)["Table"]
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise

    def reachable(self) -> bool:
        """Whether a readiness probe may say "ready": the table answers and is usable."""
        try:
            described = self.describe()
        except (ClientError, BotoCoreError, StoreUnavailable):
            return False
        return described is not None and described["TableStatus"] in ("ACTIVE", "UPDATING")

    # -- the one place requests are sent --

    def _call(self, operation: str, **request: Any) -> dict:
        # botocore retries (store/dynamo/client.py); what is left failing is final here.
        method = getattr(self._client, _snake_case(operation))
        try:
            return method(**request)
        except ClientError as exc:
            refused = error_of(operation, exc)
            if refused is not None:
                raise refused from exc
            if exhausted(exc):
                raise unavailable(f"DynamoDB {operation} failed after retries: {exc}") from exc
            raise
        except (ConnectionError, HTTPClientError) as exc:
            raise unavailable(f"DynamoDB {operation} did not answer: {exc}") from exc


_fanning = threading.local()
_FAN_OUT_LEVELS = 2


def _fanned(call: Callable[[], Any], depth: int) -> Any:
    _fanning.depth = depth
    try:
        return call()
    finally:
        _fanning.depth = 0


def _waves_without_duplicate_keys(requests: list, size: int, parallel: int) -> Iterator[list[list]]:
    """Chunks of `size` grouped in waves; a key never appears twice in one wave."""
    wave: list[list] = [[]]
    keys: set = set()
    for request in requests:
        if request[2] in keys:
            yield wave
            wave, keys = [[]], set()
        if len(wave[-1]) == size:
            if len(wave) == parallel:
                yield wave
                wave, keys = [[]], set()
            else:
                wave.append([])
        wave[-1].append(request)
        keys.add(request[2])
    if wave[-1]:
        yield wave


def _projection(paths: Iterable[Sequence[str]], names: dict) -> str:
    placeholders = {name: placeholder for placeholder, name in names.items()}
    parts = []
    for path in paths:
        segments = []
        for name in path:
            if name not in placeholders:
                placeholders[name] = f"#p{len(placeholders)}"
                names[placeholders[name]] = name
            segments.append(placeholders[name])
        parts.append(".".join(segments))
    return ", ".join(dict.fromkeys(parts))


def _with_expressions(
    request: dict, condition: str | None, names: dict | None, values: dict | None
) -> dict:
    if condition:
        request["ConditionExpression"] = condition
    if names:
        request["ExpressionAttributeNames"] = names
    serialized = serialize_values(values)
    if serialized:
        request["ExpressionAttributeValues"] = serialized
    return request


def _key(pk: str, sk: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _snake_case(operation: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")
