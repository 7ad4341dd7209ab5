"""The boto3 client of a table, and what every request through it shares: counting and retries.

Retries are ours, not botocore's, so that every attempt is counted: throttling, server errors
and dropped connections are retried with jittered exponential backoff, 8 attempts in all.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from store.dynamo.errors import error_code
from store.dynamo.uri import DynamoUri
from store.dynamo.values import keep_items_raw

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


def retryable(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return error_code(exc) in _RETRYABLE_CODES or status >= 500


def make_client(location: DynamoUri):
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


def sleep_backoff(attempt: int, operation: str, cause: Exception | None = None) -> None:
    if attempt >= _MAX_ATTEMPTS:
        if cause is not None:
            raise cause
        raise RuntimeError(f"DynamoDB {operation}: unprocessed items after {attempt} attempts")
    time.sleep(random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt)))
