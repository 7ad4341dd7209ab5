"""Fail one DynamoDB request of a store call as if botocore's retries were spent on it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import pytest
from botocore.exceptions import ClientError
from mlflow.exceptions import MlflowException

from store.dynamo.table import DynamoTable


class RequestFaults:
    """Counts the requests a table's client sends; fails the `fail_at`-th one (1-based).

    Hooked on botocore's `before-call`, which fires once per request before its retries: the
    failing request never reaches the server, as when a throttle outlasts every attempt.
    """

    def __init__(self, table: DynamoTable) -> None:
        self._lock = threading.Lock()
        self.sent: list[str] = []
        self.fail_at: int | None = None
        table._client.meta.events.register("before-call.dynamodb", self._before_call)

    def _before_call(self, model, **_) -> None:
        with self._lock:
            self.sent.append(model.name)
            if len(self.sent) != self.fail_at:
                return
        raise ClientError(
            {
                "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "test"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            model.name,
        )

    @contextlib.contextmanager
    def armed(self, fail_at: int | None) -> Iterator[None]:
        with self._lock:
            self.sent, self.fail_at = [], fail_at
        try:
            yield
        finally:
            self.fail_at = None


def requests_of(faults: RequestFaults, call: Callable[[], object]) -> list[str]:
    """The requests `call` sends when nothing fails."""
    with faults.armed(None):
        call()
    return list(faults.sent)


def fails_unavailable(faults: RequestFaults, fail_at: int, call: Callable[[], object]) -> None:
    """`call` with its `fail_at`-th request failing answers TEMPORARILY_UNAVAILABLE."""
    with faults.armed(fail_at), pytest.raises(MlflowException) as caught:
        call()
    assert caught.value.error_code == "TEMPORARILY_UNAVAILABLE", caught.value
