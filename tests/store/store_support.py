"""Helpers shared by the store tests."""

from __future__ import annotations

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
