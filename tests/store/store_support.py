"""Helpers shared by the store tests."""

from __future__ import annotations

import re

import pytest
from mlflow.exceptions import MlflowException

ARTIFACT_ROOT = "/tmp/cedarflow-test-artifacts"  # the same string for every store under test


def error_code(call, *args, **kwargs) -> str:
    """The MLflow error code `call(*args, **kwargs)` raises (fails the test if none)."""
    with pytest.raises(MlflowException) as caught:
        call(*args, **kwargs)
    return caught.value.error_code


class Clock:
    """A settable millisecond clock for the stores."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


def requests_of(store, call, *args, **kwargs) -> dict[str, int]:
    """The DynamoDB requests `call(*args, **kwargs)` sends through `store`'s table, by operation."""
    store.table.round_trips.reset()
    call(*args, **kwargs)
    return store.table.round_trips.by_operation()


def outcome_of(view, generated_ids: str, call, *args, **kwargs):
    """What a store call answers, comparable across stores: the view of what it returns (a page
    with whether a next page exists), or its error code and message with generated ids masked."""
    try:
        found = call(*args, **kwargs)
    except MlflowException as exc:
        return ("error", exc.error_code, re.sub(generated_ids, "<id>", exc.message))
    if found is None:
        return None
    if isinstance(found, list):
        return ([view(f) for f in found], getattr(found, "token", None) is not None)
    return view(found)
