"""Where a handler's parameters come from: the query string or a JSON body, read as MLflow does.

`read_params` gives the parameter dict the handler will see (a query multi-dict or a JSON
object) and refuses what could be read two ways: duplicate JSON keys, a field spelled both
snake_case and camelCase, a body on a GET that has a query string, a missing JSON
Content-Type where the handler requires one, JSON deeper than a parser goes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl

from gateway.errors import bad_request
from gateway.routing.model import JSON, NONE, OTLP, PROTO, QUERY
from gateway.routing.values import has_unpaired_surrogate


def headers_of(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        name = name.decode("latin-1") if isinstance(name, bytes) else name
        value = value.decode("latin-1") if isinstance(value, bytes) else value
        out.setdefault(name.lower(), []).append(value)
    return out


def read_params(
    kind: str, method: str, query_string: str | bytes, headers: dict, body: bytes
) -> tuple[dict | None, str | None]:
    """The parameter dict the handler will see: a query multi-dict or a JSON object."""
    if kind == OTLP:
        return None, None  # protobuf or JSON spans, read by the OTLP reader (routing/otlp.py)
    if kind == NONE:
        if body.strip():
            _json_value(body)  # a handler that reads a body here reads it as JSON
        return None, None
    if kind == QUERY:
        return _query(query_string), "query"
    if kind == JSON:
        _require_json_content_type(headers)
        return _json_body(body), "body"
    assert kind == PROTO, kind
    if method == "GET":
        query = _query(query_string)
        if query:
            if body.strip():
                raise bad_request("A GET request carries either a query string or a body.")
            return query, "query"
        return _json_body(body), "body"  # MLflow's fallback for a GET without a query
    if method in ("POST", "PUT"):
        _require_json_content_type(headers)
    return _json_body(body), "body"


def _query(query_string: str | bytes) -> dict[str, list[str]]:
    if isinstance(query_string, bytes):
        try:
            query_string = query_string.decode("ascii")
        except UnicodeDecodeError as exc:
            raise bad_request("The query string is not ASCII.") from exc
    out: dict[str, list[str]] = {}
    try:
        pairs = parse_qsl(query_string, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise bad_request("The query string is not valid UTF-8.") from exc
    for key, value in pairs:  # the same parser werkzeug uses for request.args
        out.setdefault(key, []).append(value)
    return out


def _require_json_content_type(headers: dict[str, list[str]]) -> None:
    values = headers.get("content-type", [])
    if len(values) != 1 or values[0].split(";")[0].strip().lower() != "application/json":
        raise bad_request("Bad Request. Content-Type must be one of ['application/json'].")


def _json_body(body: bytes) -> dict:
    if not body.strip():
        return {}
    value = _json_value(body)
    if isinstance(value, str):  # legacy clients double-encode the body
        value = _json_value(value)
    if not isinstance(value, dict):
        raise bad_request("The request body must be a JSON object.")
    try:
        _refuse_dual_spellings(value)
    except RecursionError:
        raise bad_request("The request body nests too deeply.") from None
    return value


def _json_value(text: bytes | str) -> object:
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except RecursionError:  # deeper than the parser goes: MLflow's own parser would crash
        raise bad_request("The request body nests too deeply.") from None
    except ValueError as exc:  # invalid JSON or invalid UTF-8
        raise bad_request("The request body is not valid JSON.") from exc
    if has_unpaired_surrogate(value, text):
        raise bad_request("The request body holds a string that is not valid Unicode.")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise bad_request(f"The request body repeats the key '{key}'.")
        out[key] = value
    return out


def camel(name: str) -> str:
    """The camelCase JSON name of a proto field name (`run_id` → `runId`)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _refuse_dual_spellings(value: object) -> None:
    if isinstance(value, list):
        for item in value:
            _refuse_dual_spellings(item)
    elif isinstance(value, dict):
        for key in value:
            if "_" in key and camel(key) != key and camel(key) in value:
                raise bad_request(
                    f"Request specifies both '{key}' and '{camel(key)}'; provide only one of them."
                )
        for item in value.values():
            _refuse_dual_spellings(item)
