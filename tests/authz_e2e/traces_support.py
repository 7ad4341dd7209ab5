"""Raw HTTP bodies for the trace calls: StartTraceV3 and OTLP span exports (JSON or protobuf)."""

from __future__ import annotations

import gzip
import json
import uuid

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

V3 = "/api/3.0/mlflow/traces"


def new_otel_id() -> str:
    """A random OTLP trace id in hex; its MLflow trace id is `tr-<hex>`."""
    return uuid.uuid4().hex


def start_trace(
    http: httpx.Client,
    trace_id: str,
    experiment_id: str,
    *,
    preview: str = "",
    tags: dict[str, str] | None = None,
) -> httpx.Response:
    info = {
        "trace_id": trace_id,
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": experiment_id},
        },
        "request_time": "2024-05-01T10:00:00Z",
        "execution_duration": "0.5s",
        "state": "OK",
        "request_preview": preview,
        "response_preview": preview,
        "tags": tags or {},
    }
    return http.post(V3, json={"trace": {"trace_info": info}})


def span_json(
    otel_trace_id: str, span_id: str, name: str, *, attributes: dict[str, str] | None = None
) -> dict:
    return {
        "traceId": otel_trace_id,
        "spanId": span_id,
        "name": name,
        "startTimeUnixNano": "1714557600000000000",
        "endTimeUnixNano": "1714557600500000000",
        "status": {"code": 1},
        "attributes": [
            {"key": k, "value": {"stringValue": v}} for k, v in (attributes or {}).items()
        ],
    }


def export_json(
    http: httpx.Client, experiment_id: str, spans: list[dict], *, compress: bool = False
) -> httpx.Response:
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()
    headers = {"Content-Type": "application/json", "X-Mlflow-Experiment-Id": experiment_id}
    if compress:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return http.post("/v1/traces", content=body, headers=headers)


def export_protobuf(http: httpx.Client, experiment_id: str, spans: list[dict]) -> httpx.Response:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for given in spans:
        span = scope.spans.add()
        span.trace_id = bytes.fromhex(given["traceId"])
        span.span_id = bytes.fromhex(given["spanId"])
        span.name = given["name"]
        span.start_time_unix_nano = int(given["startTimeUnixNano"])
        span.end_time_unix_nano = int(given["endTimeUnixNano"])
        span.status.code = given["status"]["code"]
    headers = {"Content-Type": "application/x-protobuf", "X-Mlflow-Experiment-Id": experiment_id}
    return http.post("/v1/traces", content=request.SerializeToString(), headers=headers)


def trace_info(http: httpx.Client, trace_id: str) -> dict:
    response = http.get(f"{V3}/{trace_id}")
    assert response.status_code == 200, response.text
    return response.json()["trace"]["trace_info"]


def span_names(http: httpx.Client, trace_id: str) -> list[str]:
    response = http.get(f"{V3}/get", params={"trace_id": trace_id, "allow_partial": "true"})
    assert response.status_code == 200, response.text
    return sorted(s["name"] for s in response.json()["trace"].get("spans", []))
