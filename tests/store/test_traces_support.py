"""Builders of traces and spans shared by the trace tests (no tests here)."""

from __future__ import annotations

import base64
import json
import uuid

from mlflow.entities.span import Span
from mlflow.entities.trace_info import TraceInfo
from mlflow.entities.trace_location import TraceLocation
from mlflow.entities.trace_state import TraceState


def new_trace_id() -> str:
    return f"tr-{uuid.uuid4().hex}"


def trace_info(
    trace_id: str,
    experiment_id: str,
    *,
    request_time: int = 1_700_000_000_000,
    duration: int | None = 10,
    state: TraceState = TraceState.OK,
    tags: dict | None = None,
    metadata: dict | None = None,
    client_request_id: str | None = None,
    request_preview: str | None = None,
) -> TraceInfo:
    return TraceInfo(
        trace_id=trace_id,
        trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=request_time,
        execution_duration=duration,
        state=state,
        tags=dict(tags or {}),
        trace_metadata=dict(metadata or {}),
        client_request_id=client_request_id,
        request_preview=request_preview,
    )


def span(
    trace_id: str,
    number: int,
    *,
    parent: int | None = None,
    name: str = "span",
    span_type: str = "UNKNOWN",
    status: str = "OK",
    start_ns: int = 1_700_000_000_000_000_000,
    end_ns: int | None = 1_700_000_000_005_000_000,
    attributes: dict | None = None,
) -> Span:
    attrs = {
        "mlflow.traceRequestId": json.dumps(trace_id),
        "mlflow.spanType": json.dumps(span_type),
        **{k: json.dumps(v) for k, v in (attributes or {}).items()},
    }
    return Span.from_dict(
        {
            "trace_id": "AAAAAAAAAAAAAAAAAAAAAA==",
            "span_id": _b64_id(number),
            "parent_span_id": _b64_id(parent) if parent is not None else None,
            "name": name,
            "start_time_unix_nano": start_ns,
            "end_time_unix_nano": end_ns,
            "attributes": attrs,
            "status": {"code": f"STATUS_CODE_{status}", "message": ""},
            "events": [],
        }
    )


def _b64_id(number: int) -> str:
    return base64.b64encode(number.to_bytes(8, "big")).decode()
