"""The protobuf request messages MLflow's handlers parse, and a JSON body's fit to them.

MLflow's handler turns a JSON body into its request message with protobuf's `ParseDict`; when
that fails, it re-checks the raw JSON with validators that crash on values of the wrong type
(`int([])`, `int(float("inf"))`, `None.get(...)`): an MLflow 500. `check_request_body`
therefore refuses every value `ParseDict` would not take (a list where a number goes, a bare
NaN, an integer out of range, a string that is no number, ...), and the few it takes that the
handlers' own checks then crash on: a null where a list or an integer goes, an integer spelled
"1e2". Unknown fields pass, as they do in MLflow.

The messages themselves come from routing/descriptors.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import cache

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.errors import bad_request
from gateway.routing.descriptors import request_message

_UNPAIRED_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_INTEGER_TYPES = frozenset(
    {
        FieldDescriptor.CPPTYPE_INT32,
        FieldDescriptor.CPPTYPE_INT64,
        FieldDescriptor.CPPTYPE_UINT32,
        FieldDescriptor.CPPTYPE_UINT64,
    }
)
_FLOAT_SPELLINGS = frozenset({"NaN", "Infinity", "-Infinity"})
_FLOAT32_MAX = 3.4028234663852886e38
_WRAPPERS = frozenset(
    f"google.protobuf.{kind}Value"
    for kind in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
# Well-known types by their JSON form: what each must be (None: anything).
_WELL_KNOWN: dict[str, type | None] = {
    "google.protobuf.Value": None,
    "google.protobuf.Struct": dict,
    "google.protobuf.ListValue": list,
    "google.protobuf.Any": dict,
    "google.protobuf.Empty": dict,
    "google.protobuf.Timestamp": str,
    "google.protobuf.Duration": str,
    "google.protobuf.FieldMask": str,
}


def check_request_body(action: str, body: dict) -> None:
    """Refuse (bad_request) a JSON body whose values MLflow's handler cannot parse."""
    message = request_message(action)
    if message is None:
        return
    try:
        _check_message(body, message)
    except _Mismatch as mismatch:
        shown = repr(mismatch.value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        raise bad_request(
            f"Invalid value {shown} for parameter '{mismatch.path}': it {mismatch.expectation}."
        ) from None
    except RecursionError:
        raise bad_request("The request body nests too deeply.") from None


# ---- the checks: one checker per field, built once per message -----------------------------


class _Mismatch(Exception):  # noqa: N818 - an outcome of a check, not an error of this module
    """A value that does not fit its field; `path` grows as the exception climbs."""

    def __init__(self, value: object, expectation: str, path: str = "") -> None:
        super().__init__(expectation)
        self.value, self.expectation, self.path = value, expectation, path

    def under(self, step: str) -> _Mismatch:
        if not self.path or self.path.startswith("["):
            return _Mismatch(self.value, self.expectation, step + self.path)
        return _Mismatch(self.value, self.expectation, f"{step}.{self.path}")


Checker = Callable[[object], None]


def _check_message(value: object, message: Descriptor) -> None:
    name = message.full_name
    if name in _WRAPPERS:  # google.protobuf.Int64Value and the like: the bare scalar
        _scalar_checker(message.fields_by_name["value"])(value)
        return
    if name in _WELL_KNOWN:
        wanted = _WELL_KNOWN[name]
        if wanted is not None and not isinstance(value, wanted):
            raise _Mismatch(value, f"must be a JSON {_JSON_TYPES[wanted]}")
        return
    if not isinstance(value, dict):
        raise _Mismatch(value, "must be a JSON object")
    plan = _plan(message)
    for key, item in value.items():
        check = plan.get(key)
        if check is None:
            continue  # unknown fields are ignored, as MLflow's parser does
        try:
            check(item)
        except _Mismatch as mismatch:
            raise mismatch.under(key) from None


@cache
def _plan(message: Descriptor) -> dict[str, Checker]:
    """A checker per JSON key; protobuf's parser takes a field's JSON name or its own name."""
    plan = {}
    for field in message.fields:
        check = _field_checker(field)
        plan[field.name] = check
        plan[field.json_name] = check
    return plan


def _field_checker(field: FieldDescriptor) -> Checker:
    if _is_map(field):
        key_check = _scalar_checker(field.message_type.fields_by_name["key"])
        value_check = _item_checker(field.message_type.fields_by_name["value"])
        string_keys = field.message_type.fields_by_name["key"].type == FieldDescriptor.TYPE_STRING

        def check_map(value: object) -> None:
            if not isinstance(value, dict):
                raise _Mismatch(value, "must be a JSON object")
            for key, item in value.items():
                try:
                    if not string_keys:
                        key_check(key)
                    value_check(item)
                except _Mismatch as mismatch:
                    raise mismatch.under(f"[{key}]") from None

        return check_map
    item_check = _item_checker(field)
    if field.is_repeated:
        nulls = _is_value_message(field)  # google.protobuf.Value: null is a value

        def check_list(value: object) -> None:
            if not isinstance(value, list):
                raise _Mismatch(value, "must be a JSON array")
            for index, item in enumerate(value):
                try:
                    if item is None and not nulls:
                        raise _Mismatch(item, "must not be null")
                    item_check(item)
                except _Mismatch as mismatch:
                    raise mismatch.under(f"[{index}]") from None

        return check_list
    null_refused = field.cpp_type in _INTEGER_TYPES  # MLflow's range checks call int() on it
    fits = _SCALAR_CHECKS.get(field.cpp_type)
    if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE or fits is None:
        fits = _fits_anything  # a message: item_check does the work
    expectation = _EXPECTED.get(field.cpp_type, "")

    def check_one(value: object) -> None:
        if value is None:
            if null_refused:
                raise _Mismatch(value, "must be an integer, not null")
            return
        if not fits(value, field):  # scalars checked here: the hot path of a log_batch
            raise _Mismatch(value, expectation)
        if fits is _fits_anything:
            item_check(value)

    return check_one


def _item_checker(field: FieldDescriptor) -> Checker:
    if field.cpp_type != FieldDescriptor.CPPTYPE_MESSAGE:
        return _scalar_checker(field)
    message = field.message_type

    def check_message(value: object) -> None:
        if value is not None:
            _check_message(value, message)

    return check_message


def _scalar_checker(field: FieldDescriptor) -> Checker:
    fits = _SCALAR_CHECKS.get(field.cpp_type)
    expectation = _EXPECTED.get(field.cpp_type, "")

    def check_scalar(value: object) -> None:
        if fits is not None and not fits(value, field):
            raise _Mismatch(value, expectation)

    return check_scalar


def _fits_anything(value: object, field: FieldDescriptor) -> bool:
    return True


def _fits_integer(value: object, field: FieldDescriptor) -> bool:
    number = _integer(value)
    if number is None:
        return False
    low, high = _INT_RANGES.get(field.type, (-(2**63), 2**64 - 1))
    return low <= number <= high


def _integer(value: object) -> int | None:
    """The integer protobuf's JSON parser reads from `value`, or None where it refuses."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if not isinstance(value, str) or " " in value:
        return None
    try:  # not "1e2" either: MLflow's range checks call int() on the string itself
        return int(value)
    except ValueError:
        return None


def _fits_float(value: object, field: FieldDescriptor) -> bool:
    if isinstance(value, float):
        if not math.isfinite(value):
            return False  # a bare NaN/Infinity: protobuf wants the quoted spelling
        return field.cpp_type == FieldDescriptor.CPPTYPE_DOUBLE or abs(value) <= _FLOAT32_MAX
    if isinstance(value, int):  # bool included, as protobuf's float() takes it
        return abs(value) <= 2**1023  # beyond, float() overflows instead of failing cleanly
    if not isinstance(value, str) or value == "nan":
        return False
    if value in _FLOAT_SPELLINGS:
        return True
    try:
        float(value)
    except ValueError:
        return False
    return True


def _fits_bool(value: object, field: FieldDescriptor) -> bool:
    return isinstance(value, bool)


def _fits_string(value: object, field: FieldDescriptor) -> bool:
    if not isinstance(value, str):
        return False
    return field.type == FieldDescriptor.TYPE_BYTES or not _UNPAIRED_SURROGATE.search(value)


# Messages whose enum fields MLflow's handler converts without a check (an unknown name
# becomes the unspecified value, on which it fails with a 500): unknown names are refused.
_STRICT_ENUM_MESSAGES = frozenset({"mlflow.WebhookEvent"})


def _fits_enum(value: object, field: FieldDescriptor) -> bool:
    if isinstance(value, str):
        if field.containing_type.full_name in _STRICT_ENUM_MESSAGES:
            known = field.enum_type.values_by_name.get(value)
            return known is not None and known.number != 0
        if value in field.enum_type.values_by_name:
            return True
        try:
            value = int(value)  # protobuf's JSON parser reads a number written as a string
        except ValueError:
            return True  # names MLflow does not know are ignored, as unknown fields are
    if isinstance(value, float):
        if not math.isfinite(value):
            return False
        value = int(value)
    if not isinstance(value, int):
        return False
    return int(value) in field.enum_type.values_by_number or not field.enum_type.is_closed


_SCALAR_CHECKS: dict[int, Callable[[object, FieldDescriptor], bool]] = {
    FieldDescriptor.CPPTYPE_INT32: _fits_integer,
    FieldDescriptor.CPPTYPE_INT64: _fits_integer,
    FieldDescriptor.CPPTYPE_UINT32: _fits_integer,
    FieldDescriptor.CPPTYPE_UINT64: _fits_integer,
    FieldDescriptor.CPPTYPE_DOUBLE: _fits_float,
    FieldDescriptor.CPPTYPE_FLOAT: _fits_float,
    FieldDescriptor.CPPTYPE_BOOL: _fits_bool,
    FieldDescriptor.CPPTYPE_STRING: _fits_string,
    FieldDescriptor.CPPTYPE_ENUM: _fits_enum,
}
_EXPECTED = {
    FieldDescriptor.CPPTYPE_INT32: "must be an integer in range",
    FieldDescriptor.CPPTYPE_INT64: "must be an integer in range",
    FieldDescriptor.CPPTYPE_UINT32: "must be a non-negative integer in range",
    FieldDescriptor.CPPTYPE_UINT64: "must be a non-negative integer in range",
    FieldDescriptor.CPPTYPE_DOUBLE: 'must be a number (or "NaN", "Infinity", "-Infinity")',
    FieldDescriptor.CPPTYPE_FLOAT: 'must be a number (or "NaN", "Infinity", "-Infinity")',
    FieldDescriptor.CPPTYPE_BOOL: "must be true or false",
    FieldDescriptor.CPPTYPE_STRING: "must be a string of Unicode characters",
    FieldDescriptor.CPPTYPE_ENUM: "must be one of the names of its enumeration",
}
_JSON_TYPES = {dict: "object", list: "array", str: "string"}


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE
        and field.message_type.GetOptions().map_entry
    )


def _is_value_message(field: FieldDescriptor) -> bool:
    return (
        field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE
        and field.message_type.full_name == "google.protobuf.Value"
    )
