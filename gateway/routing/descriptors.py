"""The protobuf request messages MLflow's handlers parse a call's body into.

They are read from the installed MLflow's generated `*_pb2.py` files without importing MLflow
(which costs the gateway seconds and a hundred MB): each file holds its serialized descriptor,
added here to a private descriptor pool.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from functools import cache
from pathlib import Path

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor

# The files whose messages name MLflow's calls (and the ones they import).
_REQUEST_FILES = (
    "service.proto",
    "model_registry.proto",
    "mlflow_artifacts.proto",
    "webhooks.proto",
    "datasets.proto",
    "assessments.proto",
    "label_schemas.proto",
    "issues.proto",
    "review_queues.proto",
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
        "DeleteWebhook",
        "DownloadArtifact",
        "GetDataset",
        "GetDatasetExperimentIds",
        "GetIssue",
        "GetLoggedModel",
        "GetPresignedDownloadUrl",
        "GetTraceInfo",
        "GetTraceInfoV3",
        "GetWebhook",
        "UploadArtifact",
    }
)
_SERIALIZED = re.compile(rb"AddSerializedFile\((b'(?:[^'\\]|\\.)*')\)")


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


# What MLflow's messages import: protobuf's own files and OpenTelemetry's, in dependency order.
_IMPORTED_FILES = (
    "google.protobuf.descriptor_pb2",
    "google.protobuf.any_pb2",
    "google.protobuf.duration_pb2",
    "google.protobuf.empty_pb2",
    "google.protobuf.field_mask_pb2",
    "google.protobuf.struct_pb2",
    "google.protobuf.timestamp_pb2",
    "google.protobuf.wrappers_pb2",
    "opentelemetry.proto.common.v1.common_pb2",
    "opentelemetry.proto.resource.v1.resource_pb2",
    "opentelemetry.proto.trace.v1.trace_pb2",
)


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    known = [importlib.import_module(name).DESCRIPTOR.serialized_pb for name in _IMPORTED_FILES]
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
