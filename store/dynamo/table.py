"""One DynamoDB table behind a small, typed, thread-safe surface.

Items are plain dicts of Python values; this module converts them to and from DynamoDB's typed
JSON, counts every request, and retries throttling and server errors with backoff. It uses only
the operations every DynamoDB-compatible server offers (no transactions, PartiQL or streams).
"""

from __future__ import annotations

import functools
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from store.dynamo.uri import DynamoUri, parse_dynamo_uri
from store.dynamo.values import (
    deserialize_item,
    float_from_dynamo,
    float_to_dynamo,
    keep_items_raw,
    serialize_item,
    serialize_values,
)

__all__ = [
    "GSI1",
    "ConditionFailed",
    "DynamoTable",
    "InvalidValue",
    "ItemTooLarge",
    "RoundTrips",
    "deserialize_item",
    "float_from_dynamo",
    "float_to_dynamo",
    "serialize_item",
]

_logger = logging.getLogger(__name__)

GSI1 = "gsi1"
TTL_ATTRIBUTE = "ttl"
MAX_ITEM_BYTES = 400 * 1024
BATCH_WRITE_SIZE = 25
BATCH_GET_SIZE = 100
PARALLEL_BATCH_WRITES = 8  # BatchWriteItem requests in flight at once for one call

_MAX_ATTEMPTS = 8
_BACKOFF_BASE_S = 0.025
_BACKOFF_CAP_S = 2.0
_RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "LimitExceededException",
        "TransactionInProgressException",
    }
)


class ConditionFailed(Exception):  # noqa: N818 - the name of the DynamoDB condition outcome
    """A ConditionExpression evaluated to false; nothing was written."""


class ItemTooLarge(Exception):  # noqa: N818
    """The item would exceed DynamoDB's 400 KB item limit; nothing was written."""


class InvalidValue(Exception):  # noqa: N818
    """DynamoDB refused a value of the request (a key over 2048 bytes, an empty name, ...).

    The caller's input was unusable, so where MLflow runs (the handler tier) it is raised as
    an MlflowException with INVALID_PARAMETER_VALUE too: MLflow answers 400, not 500.
    """


class RoundTrips:
    """Counts every DynamoDB request (retries included), by operation name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def record(self, operation: str) -> None:
        with self._lock:
            self._counts[operation] = self._counts.get(operation, 0) + 1

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def by_operation(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


# ---- the table ----------------------------------------------------------------------------------

_tables: dict[tuple[str, int], DynamoTable] = {}
_tables_lock = threading.Lock()


class DynamoTable:
    """One DynamoDB table and one boto3 low-level client (thread-safe) for it."""

    def __init__(self, location: DynamoUri) -> None:
        self.location = location
        self.name = location.table
        self.round_trips = RoundTrips()
        self._client = _make_client(location)
        self.parallel_writes = PARALLEL_BATCH_WRITES
        self._writer_pool: ThreadPoolExecutor | None = None
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
        """Create the table if missing (idempotent) and wait until it is ACTIVE."""
        try:
            status = self._call("DescribeTable", TableName=self.name)["Table"]["TableStatus"]
        except ClientError as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                raise
            status = self._create_table()
        deadline = time.monotonic() + 120
        while status != "ACTIVE":
            if time.monotonic() > deadline:
                raise TimeoutError(f"DynamoDB table {self.name} is not ACTIVE after 120 s")
            time.sleep(0.2)
            status = self._call("DescribeTable", TableName=self.name)["Table"]["TableStatus"]

    def _create_table(self) -> str:
        keys = [("pk", "sk"), ("gsi1pk", "gsi1sk")]
        spec: dict[str, Any] = {
            "TableName": self.name,
            "AttributeDefinitions": [
                {"AttributeName": name, "AttributeType": "S"} for pair in keys for name in pair
            ],
            "KeySchema": _key_schema(*keys[0]),
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": GSI1,
                    "KeySchema": _key_schema(*keys[1]),
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        }
        if self.location.is_local:
            # Local servers (dynalite) demand provisioned capacity and offer no streams.
            capacity = {"ReadCapacityUnits": 1000, "WriteCapacityUnits": 1000}
            spec["ProvisionedThroughput"] = capacity
            spec["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"] = capacity
        else:
            spec["BillingMode"] = "PAY_PER_REQUEST"
            spec["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            }
        try:
            status = self._call("CreateTable", **spec)["TableDescription"]["TableStatus"]
        except ClientError as exc:
            if _error_code(exc) != "ResourceInUseException":  # created by a concurrent starter
                raise
            return "CREATING"
        if not self.location.is_local:
            self._wait_active()
            self._call(
                "UpdateTimeToLive",
                TableName=self.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
            )
            self._call(
                "UpdateContinuousBackups",
                TableName=self.name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
            return "ACTIVE"
        return status

    def _wait_active(self) -> None:
        deadline = time.monotonic() + 120
        while self._call("DescribeTable", TableName=self.name)["Table"]["TableStatus"] != "ACTIVE":
            if time.monotonic() > deadline:
                raise TimeoutError(f"DynamoDB table {self.name} is not ACTIVE after 120 s")
            time.sleep(0.2)

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

    def update(
        self,
        pk: str,
        sk: str,
        expression: str,
        *,
        condition: str | None = None,
        names: dict | None = None,
        values: dict | None = None,
    ) -> dict:
        request = {
            "TableName": self.name,
            "Key": _key(pk, sk),
            "UpdateExpression": expression,
            "ReturnValues": "ALL_NEW",
        }
        response = self._call("UpdateItem", **_with_expressions(request, condition, names, values))
        return deserialize_item(response.get("Attributes", {}))

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
        sk_range: tuple[str, str] | None = None,
        index: str | None = None,
        forward: bool = True,
        limit: int | None = None,
        page_size: int | None = None,
        consistent: bool = False,
        attributes: Iterable[Sequence[str]] | None = None,
    ) -> Iterator[dict]:
        """Items of one partition in sort-key order; pages are fetched lazily as you iterate.

        `attributes`: only these attribute paths (e.g. `("params", "lr")`) are returned.
        `page_size`: items in the first request, doubled for each next one (a reader that may
        stop early pays for few items, and one that reads on soon gets full 1 MB pages).
        """
        if sk_prefix is not None and sk_range is not None:
            raise ValueError("Give sk_prefix or sk_range, not both")
        pk_name, sk_name = ("gsi1pk", "gsi1sk") if index == GSI1 else ("pk", "sk")
        condition = "#pk = :pk"
        names = {"#pk": pk_name}
        values: dict[str, Any] = {":pk": {"S": pk}}
        if sk_prefix is not None:
            condition += " AND begins_with(#sk, :prefix)"
            names["#sk"] = sk_name
            values[":prefix"] = {"S": sk_prefix}
        elif sk_range is not None:
            condition += " AND #sk BETWEEN :low AND :high"
            names["#sk"] = sk_name
            values[":low"] = {"S": sk_range[0]}
            values[":high"] = {"S": sk_range[1]}
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
        self, request: dict, limit: int | None, page_size: int | None
    ) -> Iterator[dict]:
        remaining = limit
        while True:
            sizes = [size for size in (remaining, page_size) if size is not None]
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
            if page_size is not None:
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
                _sleep_backoff(attempt, "BatchWriteItem")

    def _writers(self) -> ThreadPoolExecutor:
        with self._writers_lock:
            if self._writer_pool is None:
                self._writer_pool = ThreadPoolExecutor(self.parallel_writes, "dynamo-batch")
            return self._writer_pool

    def batch_get(self, keys: Iterable[tuple[str, str]], *, consistent: bool = True) -> list[dict]:
        """Items for the keys that exist (any order), 100 keys per request."""
        unique = list(dict.fromkeys(keys))
        found: list[dict] = []
        for start in range(0, len(unique), BATCH_GET_SIZE):
            chunk = unique[start : start + BATCH_GET_SIZE]
            pending = {
                self.name: {
                    "Keys": [_key(pk, sk) for pk, sk in chunk],
                    "ConsistentRead": consistent,
                }
            }
            attempt = 0
            while pending:
                response = self._call("BatchGetItem", RequestItems=pending)
                found += [deserialize_item(i) for i in response["Responses"].get(self.name, [])]
                pending = response.get("UnprocessedKeys") or {}
                if pending:
                    attempt += 1
                    _sleep_backoff(attempt, "BatchGetItem")
        return found

    # -- the one place requests are sent --

    def _call(self, operation: str, **request: Any) -> dict:
        method = getattr(self._client, _snake_case(operation))
        attempt = 0
        while True:
            self.round_trips.record(operation)
            try:
                return method(**request)
            except ClientError as exc:
                code = _error_code(exc)
                if code == "ConditionalCheckFailedException":
                    raise ConditionFailed(operation) from exc
                if code == "ValidationException" and "maximum allowed size" in str(exc):
                    raise ItemTooLarge(str(exc)) from exc
                if code == "ValidationException":
                    raise _invalid_value(operation, exc) from exc
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code not in _RETRYABLE_CODES and status < 500:
                    raise
                attempt += 1
                _sleep_backoff(attempt, operation, exc)
            except (ConnectionError, HTTPClientError) as exc:
                attempt += 1
                _sleep_backoff(attempt, operation, exc)


def _invalid_value(operation: str, exc: ClientError) -> InvalidValue:
    detail = exc.response.get("Error", {}).get("Message", "") or str(exc)
    _logger.info("DynamoDB %s refused a value: %s", operation, detail)
    message = f"Invalid parameter value: {detail}"
    if "mlflow.exceptions" in sys.modules:  # MLflow is loaded here: let its handlers answer 400
        return _mlflow_invalid_value()(message)
    return InvalidValue(message)  # the gateway never imports MLflow (seconds, ~100 MB)


@functools.cache
def _mlflow_invalid_value() -> type[InvalidValue]:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    class InvalidParameterValue(InvalidValue, MlflowException):
        def __init__(self, message: str) -> None:
            MlflowException.__init__(self, message, error_code=INVALID_PARAMETER_VALUE)

    return InvalidParameterValue


def _make_client(location: DynamoUri):
    session = boto3.session.Session()
    region = location.region or session.region_name or "us-east-1"
    kwargs: dict[str, Any] = {
        "region_name": region,
        # Retries are ours (counted, with backoff); botocore's would be invisible.
        "config": Config(
            retries={"max_attempts": 1, "mode": "standard"},
            max_pool_connections=32,
            connect_timeout=5,
            read_timeout=30,
            # Requests are built here from typed items; re-checking each one against the API
            # model costs more CPU than the rest of a 1000-metric log_batch.
            parameter_validation=False,
        ),
    }
    if location.endpoint_url:
        kwargs["endpoint_url"] = location.endpoint_url
    if location.is_local and session.get_credentials() is None:
        kwargs["aws_access_key_id"] = "local"
        kwargs["aws_secret_access_key"] = "local"  # noqa: S105 - a local server checks nothing
    client = session.client("dynamodb", **kwargs)
    client.meta.events.register("before-parse.dynamodb.*", keep_items_raw)
    return client


def _sleep_backoff(attempt: int, operation: str, cause: Exception | None = None) -> None:
    if attempt >= _MAX_ATTEMPTS:
        if cause is not None:
            raise cause
        raise RuntimeError(f"DynamoDB {operation}: unprocessed items after {attempt} attempts")
    time.sleep(random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt)))


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


def _key_schema(hash_name: str, range_name: str) -> list[dict]:
    return [
        {"AttributeName": hash_name, "KeyType": "HASH"},
        {"AttributeName": range_name, "KeyType": "RANGE"},
    ]


def _error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _snake_case(operation: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")
