"""An item over DynamoDB's 400 KB is refused the same way by every store: MLflow's
INVALID_PARAMETER_VALUE naming what would not fit, and nothing written (on dynalite: moto
applies an oversized update before refusing it)."""

from __future__ import annotations

import uuid

import pytest
from mlflow.entities import LoggedModelTag
from mlflow.entities.model_registry import ModelVersionTag
from mlflow.exceptions import MlflowException
from store_support import ARTIFACT_ROOT
from test_traces_support import new_trace_id, trace_info

from store.registry import DynamoRegistryStore
from store.tracking import DynamoTrackingStore


@pytest.fixture
def uri(dynalite_endpoint: str) -> str:
    return f"dynamodb://{dynalite_endpoint.removeprefix('http://')}/limit{uuid.uuid4().hex[:8]}"


def _fill(write, count, size: int) -> tuple[MlflowException, int]:
    """Write `size`-character tags until one is refused; the error and the tags kept."""
    for i in range(600_000 // size):
        try:
            write(f"k{i}", "x" * size)
        except MlflowException as exc:
            return exc, count()
    raise AssertionError("no write was refused")


def _logged_model(tracking: DynamoTrackingStore, registry: DynamoRegistryStore):
    model_id = tracking.create_logged_model("0").model_id
    return (
        f"Logged model '{model_id}'",
        lambda k, v: tracking.set_logged_model_tags(model_id, [LoggedModelTag(k, v)]),
        lambda: len(tracking.get_logged_model(model_id).tags),
        8000,
    )


def _trace(tracking: DynamoTrackingStore, registry: DynamoRegistryStore):
    trace_id = new_trace_id()
    tracking.start_trace(trace_info(trace_id, "0"))
    return (
        f"Trace '{trace_id}'",
        lambda k, v: tracking.set_trace_tag(trace_id, k, v),
        lambda: sum(k.startswith("k") for k in tracking.get_trace_info(trace_id).tags),
        8000,
    )


def _model_version(tracking: DynamoTrackingStore, registry: DynamoRegistryStore):
    registry.create_registered_model("churn")
    registry.create_model_version("churn", "s3://b/m")
    return (
        "The model version",
        lambda k, v: registry.set_model_version_tag("churn", 1, ModelVersionTag(k, v)),
        lambda: len(registry.get_model_version("churn", 1).tags),
        5000,
    )


@pytest.mark.parametrize("resource", [_logged_model, _trace, _model_version])
def test_an_item_too_large_is_refused_by_name(uri, resource):
    what, write, count, size = resource(
        DynamoTrackingStore(uri, ARTIFACT_ROOT), DynamoRegistryStore(uri)
    )
    error, kept = _fill(write, count, size)
    assert error.error_code == "INVALID_PARAMETER_VALUE"
    assert str(error.message).startswith(f"{what} would exceed the 400 KB")
    assert kept * size < 400 * 1024 < (kept + 1) * size + 10_000  # the refused one was not kept
