"""The protobuf request messages MLflow's handlers parse, and a JSON body's fit to them.

MLflow's handler turns a JSON body into its request message with protobuf's `ParseDict`; when
that fails, it re-checks the raw JSON with validators that crash on values of the wrong type
(`int([])`, `int(float("inf"))`, `None.get(...)`): an MLflow 500. The gateway therefore
refuses, before forwarding, every value `ParseDict` would not take (a list where a number
goes, a bare NaN, an integer out of range, a string that is no number, ...), and the few it
takes that the handlers' own checks then crash on: a null where a list or an integer goes, an
integer spelled "1e2". Unknown fields pass, as they do in MLflow. `check_values` adds the
handlers' other unchecked reads: string fields decoded as JSON, the query parameters of raw
handlers indexed or passed to int(), artifact paths longer than a file system or S3 takes.

The messages are read from the installed MLflow's generated `*_pb2.py` files without importing
MLflow (which costs the gateway seconds and a hundred MB): each file holds its serialized
descriptor, added here to a private descriptor pool.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.routes.model import PROTO, QUERY, Route, bad_request

# The files whose messages name MLflow's calls (and the ones they import).
_REQUEST_FILES = (
    "service.proto",
    "model_registry.proto",
    "mlflow_artifacts.proto",
    "webhooks.proto",
    "datasets.proto",
    "assessments.proto",
)
# Calls whose handler parses another message than the one named like the call.
PARSED_AS = {"DeleteTracesV3": "DeleteTraces"}
# Calls named like a message whose handler reads only the path (or streams the body).
NOT_PARSED = frozenset(
    {
        "DeleteAssessment",
        "DeleteDataset",
        "DeleteDatasetTag",
        "DeleteLoggedModel",
        "DeleteLoggedModelTag",
        "DownloadArtifact",
        "GetDataset",
        "GetDatasetExperimentIds",
        "GetLoggedModel",
        "GetPresignedDownloadUrl",
        "GetTraceInfo",
        "GetTraceInfoV3",
        "UploadArtifact",
    }
)
_SERIALIZED = re.compile(rb"AddSerializedFile\((b'(?:[^'\\]|\\.)*')\)")
_UNPAIRED_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
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
_WELL_KNOWN = {
    "google.protobuf.Value": None,
    "google.protobuf.Struct": dict,
    "google.protobuf.ListValue": list,
    "google.protobuf.Any": dict,
    "google.protobuf.Empty": dict,
    "google.protobuf.Timestamp": str,
    "google.protobuf.Duration": str,
    "google.protobuf.FieldMask": str,
}


# String fields MLflow's handler decodes as JSON, and what the decoded value must be.
_JSON_TEXT_FIELDS: dict[str, tuple[tuple[str, type], ...]] = {
    "LogModel": (("model_json", dict),),
    "CreateDataset": (("tags", dict),),
    "SetDatasetTags": (("tags", dict),),
    "UpsertDatasetRecords": (("records", list),),
}
# Query parameters MLflow's raw handlers index (`request.args[...]`) or pass to int().
RAW_QUERY_REQUIRED = {"DownloadArtifact": ("path",), "GetModelVersionArtifact": ("path",)}
_RAW_QUERY_INTEGERS = {"GetMetricHistoryBulk": ("max_results",)}
# Parameters naming a path under an artifact root, which the artifact store then opens.
_ARTIFACT_PATH_PARAMS = {
    "ListArtifacts": "path",
    "DownloadArtifact": "path",
    "GetModelVersionArtifact": "path",
    "ListLoggedModelArtifacts": "artifact_directory_path",
    "GetLoggedModelArtifact": "artifact_file_path",
}
MAX_ARTIFACT_NAME_BYTES = 255  # a file name on common file systems
MAX_ARTIFACT_PATH_BYTES = 1024  # an S3 object key


def check_values(route: Route, params: dict | None, source: str | None) -> None:
    """Refuse values the handler would crash on rather than refuse itself."""
    action = route.action or ""
    if source == "body" and route.params == PROTO and params:
        check_request_body(action, params)
        for name, kind in _JSON_TEXT_FIELDS.get(action, ()):
            _check_json_text(params, name, kind)
    if source == "query" and route.params == QUERY:
        for name in RAW_QUERY_REQUIRED.get(action, ()):
            if name not in params:
                raise bad_request(f"Missing value for required parameter '{name}'.")
        for name in _RAW_QUERY_INTEGERS.get(action, ()):
            value = (params.get(name) or [None])[0]
            if value is not None and not _is_int_text(value):
                raise bad_request(f"Invalid value '{value}' for parameter '{name}'.")
    name = _ARTIFACT_PATH_PARAMS.get(action)
    if name and params:
        value = params.get(name)
        value = value[0] if source == "query" and isinstance(value, list) and value else value
        if isinstance(value, str):
            check_artifact_path_length(value, name)


def check_artifact_path_length(path: str, name: str = "path") -> None:
    """Refuse an artifact path no file system or S3 key can hold (the store would fail)."""
    encoded = path.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_ARTIFACT_PATH_BYTES or any(
        len(part) > MAX_ARTIFACT_NAME_BYTES for part in encoded.split(b"/")
    ):
        raise bad_request(f"Parameter '{name}' is longer than an artifact path can be.")


def _check_json_text(params: dict, name: str, kind: type) -> None:
    text = params.get(name, params.get(_camel(name)))
    if not isinstance(text, str) or not text:
        return  # absent or empty: the handler's own checks answer
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, kind):
        what = "object" if kind is dict else "array"
        raise bad_request(f"Parameter '{name}' must be a JSON {what} encoded as a string.")


def _is_int_text(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


def has_unpaired_surrogate(value: object, raw: bytes | str | None = None) -> bool:
    """Whether parsed JSON holds a string no UTF-8 can carry (a lone `\\ud800` escape).

    Such a string fails wherever it is written out (a JSON answer, DynamoDB): refused early.
    `raw`, the JSON text, lets the common case (no surrogate escape at all) skip the walk.
    """
    if raw is not None:
        text = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
        if not _SURROGATE_ESCAPE.search(text):
            return False
    try:
        return _walk_for_surrogates(value)
    except RecursionError:
        return True


def _walk_for_surrogates(value: object) -> bool:
    if isinstance(value, str):
        return bool(_UNPAIRED_SURROGATE.search(value))
    if isinstance(value, dict):
        return any(_walk_for_surrogates(k) or _walk_for_surrogates(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_walk_for_surrogates(item) for item in value)
    return False


def check_request_body(action: str, body: dict) -> None:
    """Refuse (bad_request) a JSON body whose values MLflow's handler cannot parse."""
    message = request_message(action)
    if message is None:
        return
    try:
        _check_message(body, message, "")
    except RecursionError:
        raise bad_request("The request body nests too deeply.") from None


@cache
def request_message(action: str) -> Descriptor | None:
    """The message MLflow's handler parses a call's body into, or None (body not parsed)."""
    if action in NOT_PARSED:
        return None
    name = PARSED_AS.get(action, action)
    pool = _pool()
    for file_name in _REQUEST_FILES:
        found = pool.FindFileByName(file_name).message_types_by_name.get(name)
        if found is not None:
            return found
    return None


# ---- the checks, field by field ---------------------------------------------------------


def _check_message(value: object, message: Descriptor, path: str) -> None:
    name = message.full_name
    if name in _WRAPPERS:  # google.protobuf.Int64Value and the like: the bare scalar
        _check_scalar(value, message.fields_by_name["value"], path)
        return
    if name in _WELL_KNOWN:
        wanted = _WELL_KNOWN[name]
        if wanted is not None and not isinstance(value, wanted):
            raise _invalid(path, value, f"must be a JSON {_json_type(wanted)}")
        return
    if not isinstance(value, dict):
        raise _invalid(path, value, "must be a JSON object")
    fields = _fields_by_json_key(message)
    for key, item in value.items():
        field = fields.get(key)
        if field is not None:  # unknown fields are ignored, as MLflow's parser does
            _check_field(item, field, f"{path}.{key}" if path else key)


@cache
def _fields_by_json_key(message: Descriptor) -> dict[str, FieldDescriptor]:
    # protobuf's parser looks a key up by JSON name first, then by field name
    return {f.name: f for f in message.fields} | {f.json_name: f for f in message.fields}


def _check_field(value: object, field: FieldDescriptor, path: str) -> None:
    if _is_map(field):
        if not isinstance(value, dict):
            raise _invalid(path, value, "must be a JSON object")
        value_field = field.message_type.fields_by_name["value"]
        key_field = field.message_type.fields_by_name["key"]
        for key, item in value.items():
            if key_field.cpp_type != FieldDescriptor.CPPTYPE_STRING:
                _check_scalar(key, key_field, f"{path}.key")
            _check_item(item, value_field, f"{path}[{key}]")
        return
    if field.is_repeated:
        if not isinstance(value, list):
            raise _invalid(path, value, "must be a JSON array")
        for index, item in enumerate(value):
            if item is None and not _is_value_message(field):
                raise _invalid(f"{path}[{index}]", item, "must not be null")
            _check_item(item, field, f"{path}[{index}]")
        return
    if value is not None:
        _check_item(value, field, path)
    elif field.cpp_type in _INTEGER_TYPES:  # MLflow's range checks call int() on it
        raise _invalid(path, value, "must be an integer, not null")


def _check_item(value: object, field: FieldDescriptor, path: str) -> None:
    if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        if value is not None:
            _check_message(value, field.message_type, path)
    else:
        _check_scalar(value, field, path)


def _check_scalar(value: object, field: FieldDescriptor, path: str) -> None:
    checker = _SCALAR_CHECKS.get(field.cpp_type)
    if checker is not None and not checker(value, field):
        raise _invalid(path, value, _EXPECTED[field.cpp_type])


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


def _fits_enum(value: object, field: FieldDescriptor) -> bool:
    if isinstance(value, str):
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


def _invalid(path: str, value: object, expectation: str):
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return bad_request(f"Invalid value {shown} for parameter '{path}': it {expectation}.")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _json_type(kind: type) -> str:
    return {dict: "object", list: "array", str: "string"}[kind]


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


# ---- the descriptors, read from MLflow's generated files ---------------------------------


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    from google.protobuf import (
        any_pb2,
        descriptor_pb2,
        duration_pb2,
        empty_pb2,
        field_mask_pb2,
        struct_pb2,
        timestamp_pb2,
        wrappers_pb2,
    )
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    pool = descriptor_pool.DescriptorPool()
    known = [
        module.DESCRIPTOR.serialized_pb
        for module in (
            descriptor_pb2,
            any_pb2,
            duration_pb2,
            empty_pb2,
            field_mask_pb2,
            struct_pb2,
            timestamp_pb2,
            wrappers_pb2,
            common_pb2,
            resource_pb2,
            trace_pb2,
        )
    ]
    pending = known + [_serialized_file(path) for path in _mlflow_proto_modules()]
    while pending:  # each file needs its imports added first: add what can be, repeat
        left = []
        for serialized in pending:
            try:
                pool.AddSerializedFile(serialized)
            except (TypeError, KeyError):
                left.append(serialized)
        if len(left) == len(pending):
            break  # files of other products (Unity Catalog, ...) may import what is not here
        pending = left
    return pool


def _mlflow_proto_modules() -> list[Path]:
    spec = importlib.util.find_spec("mlflow")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("MLflow is not installed")
    protos = Path(next(iter(spec.submodule_search_locations))) / "protos"
    return sorted(protos.glob("*_pb2.py")) + sorted(protos.glob("scalapb/*_pb2.py"))


def _serialized_file(path: Path) -> bytes:
    match = _SERIALIZED.search(path.read_bytes())
    if match is None:
        raise RuntimeError(f"no serialized descriptor in {path}")
    return ast.literal_eval(match.group(1).decode("latin-1"))
