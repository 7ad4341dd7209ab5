"""The traces an OTLP export names, read as MLflow's `/v1/traces` handler reads the body."""

from __future__ import annotations

import base64
import gzip
import json
import zlib

import pytest
from google.protobuf.json_format import Parse as parse_json_message
from mlflow.entities.span import Span
from mlflow.server.otel_api import _convert_otlp_json_ids_to_base64
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway.errors import GatewayError
from gateway.routing.otlp import MAX_OTLP_BYTES, otlp_trace_ids

JSON = {"content-type": ["application/json"]}
PROTOBUF = {"content-type": ["application/x-protobuf"]}
A, B = "0af7651916cd43dd8448eb211c80319c", "4bf92f3577b34da6a3ce929d0e0e4736"


def spans_json(*trace_ids: str, snake: bool = False) -> bytes:
    if snake:  # protobuf's own field names: ids are then read as base64, not hex
        spans = [
            {"trace_id": base64.b64encode(bytes.fromhex(t)).decode(), "span_id": "AAAAAAAAAAE="}
            for t in trace_ids
        ]
        return json.dumps({"resource_spans": [{"scope_spans": [{"spans": spans}]}]}).encode()
    spans = [{"traceId": t, "spanId": "00000000000000a1", "name": "s"} for t in trace_ids]
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()


def spans_protobuf(*trace_ids: str) -> bytes:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for trace_id in trace_ids:
        span = scope.spans.add()
        span.trace_id, span.span_id, span.name = bytes.fromhex(trace_id), b"\x01" * 8, "s"
    return request.SerializeToString()


def as_mlflow_reads_it(media_type: str, body: bytes) -> list[str]:
    """MLflow's handler: its JSON id conversion, protobuf parsing, Span.from_otel_proto."""
    request = ExportTraceServiceRequest()
    if media_type == "application/json":
        parse_json_message(
            _convert_otlp_json_ids_to_base64(body), request, ignore_unknown_fields=True
        )
    else:
        request.ParseFromString(body)
    ids = [
        Span.from_otel_proto(span).trace_id
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    return list(dict.fromkeys(ids))


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (JSON, spans_json(A, B, A)),
        (JSON, spans_json(A, snake=True)),
        (PROTOBUF, spans_protobuf(B, A)),
        ({"content-type": ["application/json; charset=utf-8"]}, spans_json(B)),
    ],
    ids=["json-hex", "json-snake-base64", "protobuf", "json-charset"],
)
def test_trace_ids_are_the_ones_mlflow_derives(headers, body):
    media_type = headers["content-type"][0].split(";")[0]
    assert otlp_trace_ids(headers, body) == as_mlflow_reads_it(media_type, body)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("GZIP", lambda b: gzip.compress(b[:40]) + gzip.compress(b[40:])),  # two members
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b, wbits=-zlib.MAX_WBITS)),  # raw DEFLATE
    ],
    ids=["gzip", "gzip-members", "deflate", "raw-deflate"],
)
def test_compressed_bodies_are_read(encoding, compress):
    headers = {**JSON, "content-encoding": [encoding]}
    assert otlp_trace_ids(headers, compress(spans_json(A, B))) == [f"tr-{A}", f"tr-{B}"]


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, spans_json(A)),
        ({"content-type": ["text/plain"]}, spans_json(A)),
        ({"content-type": ["application/json", "application/x-protobuf"]}, spans_json(A)),
        (JSON, b"[1, 2]"),
        (JSON, b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}'),
        (JSON, b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 7}]}]}]}'),
        (JSON, b"{}"),
        (JSON, spans_json("")),
        (PROTOBUF, b"\xff\xff\xff"),
        ({**JSON, "content-encoding": ["gzip"]}, b"not gzip"),
        ({**JSON, "content-encoding": ["br"]}, spans_json(A)),
        ({**JSON, "content-encoding": ["gzip"]}, gzip.compress(spans_json(A))[:-9]),
    ],
    ids=[
        "no-type",
        "text",
        "two-types",
        "not-an-object",
        "bad-hex",
        "number-id",
        "no-spans",
        "empty-trace-id",
        "bad-protobuf",
        "bad-gzip",
        "unknown-encoding",
        "truncated-gzip",
    ],
)
def test_unreadable_bodies_are_refused(headers, body):
    with pytest.raises(GatewayError) as info:
        otlp_trace_ids(headers, body)
    assert info.value.status_code == 400


def test_a_body_too_big_once_decompressed_is_refused():
    bomb = gzip.compress(b" " * (MAX_OTLP_BYTES + 1))
    with pytest.raises(GatewayError) as info:
        otlp_trace_ids({**JSON, "content-encoding": ["gzip"]}, bomb)
    assert info.value.status_code == 413
