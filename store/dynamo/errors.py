"""What a DynamoDB request can answer besides success, as the stores see it.

A failed condition and an item over 400 KB change nothing and are the store's to explain; any
other value DynamoDB refuses (a key over 2048 bytes, an empty attribute name, ...) is the
caller's input it cannot hold. Where MLflow runs, that input error is MLflow's
INVALID_PARAMETER_VALUE (HTTP 400); the gateway never loads MLflow and sees InvalidValue.
A DynamoDB still throttled, failing or out of reach after every retry makes the store
unavailable: StoreUnavailable, where MLflow runs its TEMPORARILY_UNAVAILABLE (HTTP 503).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Iterator

from botocore.exceptions import ClientError

_logger = logging.getLogger(__name__)


class ConditionFailed(Exception):  # noqa: N818 - the name of the DynamoDB condition outcome
    """A ConditionExpression evaluated to false; nothing was written."""


class TableSchemaMismatch(RuntimeError):  # noqa: N818
    """The table exists without an index (or key) the stores need; nothing can be served."""


class ItemTooLarge(Exception):  # noqa: N818
    """The item would exceed DynamoDB's 400 KB item limit; nothing was written."""


class InvalidValue(Exception):  # noqa: N818
    """DynamoDB refused a value of the request (a key over 2048 bytes, an empty name, ...).

    The caller's input was unusable, so where MLflow runs (the handler tier) it is raised as
    an MlflowException with INVALID_PARAMETER_VALUE too: MLflow answers 400, not 500.
    """


class StoreUnavailable(Exception):  # noqa: N818 - the state of the store, as MLflow names it
    """DynamoDB did not answer in time or kept refusing (throttled, unreachable, failing) after
    every retry. Nothing is known to be wrong with the request: it may succeed later.

    Where MLflow runs it is raised as an MlflowException with TEMPORARILY_UNAVAILABLE: MLflow
    answers 503, which its clients retry.
    """


@contextlib.contextmanager
def within_item_limit(what: str, advice: str = "") -> Iterator[None]:
    """A write refused for DynamoDB's 400 KB item limit, as the caller's error naming `what`
    (e.g. "Run 1a2b"): nothing was written, and where MLflow runs it answers 400."""
    try:
        yield
    except ItemTooLarge:
        message = f"{what} would exceed the 400 KB a DynamoDB item can hold; nothing was written."
        raise _invalid_value(f"{message} {advice}".strip()) from None


def _invalid_value(message: str) -> InvalidValue:
    """InvalidValue, raised where MLflow runs as its INVALID_PARAMETER_VALUE (HTTP 400)."""
    if "mlflow.exceptions" in sys.modules:  # MLflow is loaded here: let its handlers answer 400
        return _mlflow_invalid_value()(message)
    return InvalidValue(message)  # the gateway never imports MLflow (seconds, ~100 MB)


def unavailable(message: str) -> StoreUnavailable:
    """StoreUnavailable, raised where MLflow runs as its TEMPORARILY_UNAVAILABLE (HTTP 503)."""
    _logger.warning("%s", message)
    if "mlflow.exceptions" in sys.modules:
        return _mlflow_unavailable()(message)
    return StoreUnavailable(message)


def _refused_value(operation: str, exc: ClientError) -> InvalidValue:
    detail = exc.response.get("Error", {}).get("Message", "") or str(exc)
    _logger.info("DynamoDB %s refused a value: %s", operation, detail)
    return _invalid_value(f"Invalid parameter value: {detail}")


@functools.cache
def _mlflow_invalid_value() -> type[InvalidValue]:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    class InvalidParameterValue(InvalidValue, MlflowException):
        def __init__(self, message: str) -> None:
            MlflowException.__init__(self, message, error_code=INVALID_PARAMETER_VALUE)

    return InvalidParameterValue


@functools.cache
def _mlflow_unavailable() -> type[StoreUnavailable]:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

    class TemporarilyUnavailable(StoreUnavailable, MlflowException):
        def __init__(self, message: str) -> None:
            MlflowException.__init__(self, message, error_code=TEMPORARILY_UNAVAILABLE)

    return TemporarilyUnavailable


def error_of(operation: str, exc: ClientError) -> Exception | None:
    """The store's exception for a refused request, None for any other error."""
    code = error_code(exc)
    if code == "ConditionalCheckFailedException":
        return ConditionFailed(operation)
    if code == "ValidationException" and "maximum allowed size" in str(exc):
        return ItemTooLarge(str(exc))
    if code == "ValidationException":
        return _refused_value(operation, exc)
    return None


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")
