"""Plain Python values ⇄ DynamoDB's typed JSON, including floats DynamoDB numbers cannot hold."""

from __future__ import annotations

import base64
import json
import math
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer

# DynamoDB numbers hold magnitudes in [1e-130, 1e126); a float's repr has at most 17 digits.
_MIN_MAGNITUDE = 1e-130
_MAX_MAGNITUDE = 1e126


def float_to_dynamo(value: float) -> Decimal | str:
    """A float as a DynamoDB number when it fits, else as its repr ("nan", "inf", "1e+300")."""
    value = float(value)
    if math.isfinite(value) and (value == 0 or _MIN_MAGNITUDE <= abs(value) < _MAX_MAGNITUDE):
        return Decimal(repr(value))
    return repr(value)


def float_from_dynamo(value: Any) -> float:
    """Inverse of `float_to_dynamo` (also accepts ints and Decimals read back from the table)."""
    return float(value)


_serializer = TypeSerializer()


def _to_storable(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return float_to_dynamo(value)
    if isinstance(value, dict):
        return {k: _to_storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_storable(v) for v in value]
    if isinstance(value, set | frozenset) and value and all(isinstance(v, float) for v in value):
        return {Decimal(repr(v)) for v in value}
    return value


def serialize_item(item: dict) -> dict:
    """Plain dict → DynamoDB typed JSON (floats that DynamoDB cannot hold become strings)."""
    return {k: serialize_value(v) for k, v in item.items()}


def serialize_value(value: Any) -> dict:
    return _serializer.serialize(_to_storable(value))


def deserialize_item(item: dict) -> dict:
    """DynamoDB typed JSON → plain dict (integral numbers as int, others as float)."""
    return {k: _from_wire(v) for k, v in item.items()}


def _from_wire(value: dict) -> Any:
    ((kind, body),) = value.items()
    if kind == "S" or kind == "BOOL":
        return body
    if kind == "N":
        return _number(body)
    if kind == "M":
        return {k: _from_wire(v) for k, v in body.items()}
    if kind == "L":
        return [_from_wire(v) for v in body]
    if kind == "NULL":
        return None
    if kind == "SS":
        return set(body)
    if kind == "NS":
        return {_number(v) for v in body}
    if kind == "B":
        return _binary(body)
    if kind == "BS":
        return {_binary(v) for v in body}
    raise ValueError(f"Unknown DynamoDB type {kind!r}")


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        number = Decimal(text)
        return int(number) if number == number.to_integral_value() else float(number)


def _binary(body) -> bytes:
    return bytes(body) if isinstance(body, bytes | bytearray) else base64.b64decode(body)


# Items in responses are handed over as DynamoDB JSON, untouched by botocore's shape parser
# (which is most of the cost of reading a page of items); `deserialize_item` reads them.
_RAW_RESPONSE_MEMBERS = ("Item", "Items", "Attributes", "Responses", "LastEvaluatedKey")


def keep_items_raw(response_dict: dict, customized_response_dict: dict, **_: Any) -> None:
    if response_dict.get("status_code", 500) >= 300 or not response_dict.get("body"):
        return
    body = json.loads(response_dict["body"])
    for member in _RAW_RESPONSE_MEMBERS:
        if member in body:
            customized_response_dict[member] = body.pop(member)
    response_dict["body"] = json.dumps(body).encode()


def serialize_values(values: dict | None) -> dict | None:
    if not values:
        return None
    return {k: _serializer.serialize(_to_storable(v)) for k, v in values.items()}
