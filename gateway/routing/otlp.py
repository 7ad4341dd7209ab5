"""The traces an OTLP span export (`POST /v1/traces`) writes into, read as MLflow's handler reads
the body (`mlflow/server/otel_api.py`): Content-Type protobuf or JSON, optional gzip/deflate
Content-Encoding, JSON ids in hex, and every span's MLflow trace id derived from its OTLP trace
id ("tr-" + 32 hex digits; a `mlflow.traceRequestId` attribute is not trusted by the handler).
A body the handler could not read is refused here too, so nothing unread is forwarded.
"""

from __future__ import annotations

import base64
import json
import zlib

from google.protobuf.json_format import Error as ProtoJsonError
from google.protobuf.json_format import Parse as parse_json_message
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway.errors import GatewayError, bad_request

# Decompressed OTLP bodies are held in memory to be read; a bigger one is refused.
MAX_OTLP_BYTES = 64 * 1024 * 1024
_MEDIA_TYPES = ("application/x-protobuf", "application/json")
_HEX_ID_FIELDS = ("traceId", "spanId", "parentSpanId")
_TRACE_ID_PREFIX = "tr-"


def otlp_trace_ids(headers: dict[str, list[str]], body: bytes) -> list[str]:
    """MLflow trace ids of every span in an OTLP export body, in order, without repeats."""
    media_type = _media_type(_single(headers, "content-type"))
    encoding = _single(headers, "content-encoding")
    if encoding:
        body = _decompress(body, encoding.lower())
    request = ExportTraceServiceRequest()
    try:
        if media_type == "application/json":
            parse_json_message(_hex_ids_as_base64(body), request, ignore_unknown_fields=True)
        else:
            request.ParseFromString(body)
    except (DecodeError, ProtoJsonError, ValueError, TypeError, AttributeError, RecursionError):
        raise bad_request("Invalid OpenTelemetry format.") from None
    if not request.resource_spans:
        raise bad_request("Invalid OpenTelemetry format - no spans found.")
    trace_ids: dict[str, None] = {}
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if not span.trace_id or not span.span_id:
                    raise bad_request("Every OpenTelemetry span needs a trace id and a span id.")
                number = int.from_bytes(span.trace_id, byteorder="big", signed=False)
                trace_ids[f"{_TRACE_ID_PREFIX}{number:032x}"] = None
    return list(trace_ids)


def _single(headers: dict[str, list[str]], name: str) -> str:
    values = headers.get(name, [])
    if len(values) > 1:
        raise bad_request(f"The header {name} is repeated.")
    return values[0] if values else ""


def _media_type(content_type: str) -> str:
    media_type = content_type.split(";")[0].strip()
    if media_type not in _MEDIA_TYPES:
        raise bad_request(
            f"Invalid Content-Type: {content_type or None}. "
            "Expected: application/x-protobuf or application/json"
        )
    return media_type


def _decompress(body: bytes, encoding: str) -> bytes:
    """What MLflow's handler decompresses (gzip, possibly several members; zlib or raw deflate),
    never more than MAX_OTLP_BYTES."""
    if encoding == "gzip":
        data, rest = b"", body
        while rest:
            member, rest = _inflate(rest, zlib.MAX_WBITS | 16, MAX_OTLP_BYTES - len(data))
            if member is None:
                raise bad_request("Failed to decompress gzip payload")
            data += member
        return data
    if encoding == "deflate":
        for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS):  # zlib-wrapped, then raw DEFLATE
            data, _ = _inflate(body, wbits, MAX_OTLP_BYTES)
            if data is not None:
                return data
        raise bad_request("Failed to decompress deflate payload")
    raise bad_request(f"Unsupported Content-Encoding: {encoding}")


def _inflate(body: bytes, wbits: int, limit: int) -> tuple[bytes | None, bytes]:
    """One compressed stream: (its data, what follows it), or (None, b"") when unreadable."""
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
        if len(data) > limit or inflater.unconsumed_tail:
            raise GatewayError(
                413,
                "RESOURCE_EXHAUSTED",
                f"The OTLP body is larger than {MAX_OTLP_BYTES} bytes once decompressed.",
            )
    except zlib.error:
        return None, b""
    if not inflater.eof:
        return None, b""
    return data, inflater.unused_data


def _hex_ids_as_base64(body: bytes) -> bytes:
    """OTLP JSON writes ids in hex; protobuf's JSON mapping reads bytes as base64. Like MLflow's
    handler, only the camelCase id fields under camelCase containers are converted."""
    data = json.loads(body)
    for resource_spans in data.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for field in _HEX_ID_FIELDS:
                    if hex_value := span.get(field):
                        span[field] = base64.b64encode(bytes.fromhex(hex_value)).decode("ascii")
    return json.dumps(data).encode("utf-8")
