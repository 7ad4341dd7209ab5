"""The boto3 client of a table, and what every request through it shares: counting, retries
and time bounds.

Retries are botocore's standard mode (jittered exponential backoff, a retry quota that stops
retrying when DynamoDB keeps failing), set here and nowhere else; every attempt is counted by an
event hook. A request therefore takes at most about `MAX_ATTEMPTS * (CONNECT_TIMEOUT_S +
READ_TIMEOUT_S)` plus the backoff between attempts (under 1 s, then 2 s, 4 s, ...): 42 s with
the defaults. When every attempt has failed the store raises StoreUnavailable (HTTP 503 where
MLflow runs).
"""

from __future__ import annotations

import os
import platform
import random
import threading
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from store.dynamo.errors import error_code, unavailable
from store.dynamo.uri import DynamoUri
from store.dynamo.values import keep_items_raw

USER_AGENT = f"Cedarflow Python/{platform.python_version()}"  # boto3 adds its own version

# Environment overrides of the bounds (deployments with their own latency budget, and tests).
MAX_ATTEMPTS_ENV = "CEDARFLOW_DYNAMODB_MAX_ATTEMPTS"
READ_TIMEOUT_ENV = "CEDARFLOW_DYNAMODB_TIMEOUT_SECONDS"
MAX_ATTEMPTS = 3  # attempts per request, the first included
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0  # a DynamoDB answer takes milliseconds; a busy local server, seconds
RETRY_MODE = "standard"

_UNPROCESSED_ATTEMPTS = 8  # batch requests whose items DynamoDB left unprocessed
_BACKOFF_BASE_S = 0.025
_BACKOFF_CAP_S = 2.0
# Answers after which DynamoDB may well succeed later: the store is unavailable, not wrong.
_UNAVAILABLE_CODES = frozenset(
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

    def on_send(self, event_name: str, **kwargs: Any) -> None:
        """botocore's before-send hook: one more attempt of the operation in `event_name`."""
        self.record(event_name.rsplit(".", 1)[-1])

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


def exhausted(exc: ClientError) -> bool:
    """Whether `exc` is a failure botocore retried (throttling, a server error) to the end."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return error_code(exc) in _UNAVAILABLE_CODES or status >= 500


def client_config() -> Config:
    """The one botocore configuration of every DynamoDB request: retries and time bounds."""
    return Config(
        retries={
            "mode": RETRY_MODE,
            "total_max_attempts": _env_number(MAX_ATTEMPTS_ENV, MAX_ATTEMPTS),
        },
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=_env_number(READ_TIMEOUT_ENV, READ_TIMEOUT_S),
        max_pool_connections=32,
        # Requests are built here from typed items; re-checking each one against the API
        # model costs more CPU than the rest of a 1000-metric log_batch.
        parameter_validation=False,
        # A fixed User-Agent: botocore otherwise rebuilds it twice per request from a dozen
        # sanitized parts, a sixth of the client's CPU on a small write.
        user_agent=USER_AGENT,
    )


def make_client(location: DynamoUri, round_trips: RoundTrips | None = None):
    session = boto3.session.Session()
    region = location.region or session.region_name or "us-east-1"
    kwargs: dict[str, Any] = {"region_name": region, "config": client_config()}
    if location.endpoint_url:
        kwargs["endpoint_url"] = location.endpoint_url
    if location.is_local and session.get_credentials() is None:
        kwargs["aws_access_key_id"] = "local"
        kwargs["aws_secret_access_key"] = "local"  # noqa: S105 - a local server checks nothing
    client = session.client("dynamodb", **kwargs)
    client.meta.events.register("before-parse.dynamodb.*", keep_items_raw)
    if round_trips is not None:
        # Fired once per HTTP attempt, so botocore's retries are counted too.
        client.meta.events.register_first("before-send.dynamodb.*", round_trips.on_send)
    return client


def sleep_backoff(attempt: int, operation: str) -> None:
    """Wait before resending what a batch request left unprocessed; give up after a bound."""
    if attempt >= _UNPROCESSED_ATTEMPTS:
        raise unavailable(f"DynamoDB {operation}: items left unprocessed after {attempt} attempts")
    time.sleep(random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt)))


def _env_number(name: str, default: float) -> Any:
    value = os.environ.get(name, "")
    if not value:
        return default
    number = type(default)(value)
    if number <= 0:
        raise ValueError(f"{name} must be a positive number, not {value!r}")
    return number
