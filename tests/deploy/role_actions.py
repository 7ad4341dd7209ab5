"""The AWS actions the service needs, read from the code that sends the requests.

DynamoDB: every request of the stores goes through
`store.dynamo.table.DynamoTable._call("Operation", ...)`, so the operations are the string
arguments of those calls. S3: MLflow's S3 artifact repository sends every request through its
boto3 client `s3_client`.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path

from deploy_support import ROOT

STORE_DIR = ROOT / "store"

# Modules of `cedarflow table create|export|import`, which a platform engineer runs with
# their own credentials: `cedarflow serve` never creates, dumps or loads a table, so what only
# they send is not granted. (`table check`, store/dynamo/check.py, is what serve runs at start:
# its requests are granted.)
TABLE_ADMINISTRATION_MODULES = frozenset({"provision.py", "transfer.py"})
# /readyz checks the table with DescribeTable (serve's readiness contract: table + JWKS +
# handler tier); it reads the table's description, no item.
READINESS_OPERATIONS = frozenset({"DescribeTable"})

# boto3 S3 client calls → the IAM actions they need. A call missing here fails the test: add it
# with its actions, and grant them in service.yaml.
S3_CALL_ACTIONS = {
    # Large files go in parts (still s3:PutObject); a failed transfer aborts its upload.
    "upload_file": {"s3:PutObject", "s3:AbortMultipartUpload"},
    "put_object": {"s3:PutObject"},
    "create_multipart_upload": {"s3:PutObject"},
    "upload_part": {"s3:PutObject"},
    "complete_multipart_upload": {"s3:PutObject"},
    "abort_multipart_upload": {"s3:AbortMultipartUpload"},
    "download_file": {"s3:GetObject"},
    "get_object": {"s3:GetObject"},
    "head_object": {"s3:GetObject"},
    "list_objects_v2": {"s3:ListBucket"},
    "delete_objects": {"s3:DeleteObject"},
}
# Client attributes that send nothing themselves; their first argument names the request.
S3_REQUEST_BUILDERS = frozenset({"get_paginator", "generate_presigned_url"})
S3_NOT_REQUESTS = frozenset({"meta"})


def dynamodb_operations_by_module() -> dict[str, set[str]]:
    """DynamoDB operation → the store modules (file names) that send it."""
    found: dict[str, set[str]] = {}
    for path in sorted(STORE_DIR.rglob("*.py")):
        for _, call in _calls_in_functions(ast.parse(path.read_text())):
            if isinstance(call.func, ast.Attribute) and call.func.attr == "_call":
                first = call.args[0] if call.args else None
                assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                    f"{path.name}:{call.lineno}: _call with an operation not named literally"
                )
                found.setdefault(first.value, set()).add(path.name)
    return found


def dynamodb_actions_of_the_service() -> set[str]:
    """Every operation sent outside table administration, plus the readiness check's."""
    by_module = dynamodb_operations_by_module()
    assert set(by_module) >= READINESS_OPERATIONS, "the readiness operation is not a store call"
    present = {path.name for path in (STORE_DIR / "dynamo").glob("*.py")}
    assert present >= TABLE_ADMINISTRATION_MODULES, "table administration moved: update the set"
    served = {op for op, modules in by_module.items() if modules - TABLE_ADMINISTRATION_MODULES}
    return {f"dynamodb:{op}" for op in served | READINESS_OPERATIONS}


def requests_sent_around_the_table_wrapper() -> list[str]:
    """Places in store/ that make an AWS client or use DynamoTable's outside `_call`."""
    stray = []
    for path in sorted(STORE_DIR.rglob("*.py")):
        for function, node in _nodes_in_functions(ast.parse(path.read_text())):
            uses_client = (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "_client"
            ) or (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and node.args
                and isinstance(node.args[0], ast.Attribute)
                and node.args[0].attr == "_client"
            )
            makes_client = (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("client", "resource")
            )
            if (uses_client and function != "_call") or (
                makes_client and function != "make_client"
            ):
                stray.append(f"{path.name}:{node.lineno} in {function}")
    return stray


def mlflow_s3_repository_source() -> Path:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repository = type(get_artifact_repository("s3://bucket/prefix"))
    spec = importlib.util.find_spec(repository.__module__)
    assert spec is not None and spec.origin is not None
    return Path(spec.origin)


def s3_calls_of_mlflow() -> set[str]:
    """The boto3 S3 requests MLflow's S3 artifact repository sends."""
    calls: set[str] = set()
    tree = ast.parse(mlflow_s3_repository_source().read_text())
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "s3_client"
        ):
            continue
        if node.attr in S3_NOT_REQUESTS:
            continue
        if node.attr not in S3_REQUEST_BUILDERS:
            calls.add(node.attr)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in S3_REQUEST_BUILDERS
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            calls.add(node.args[0].value)
    return calls


def s3_actions_of_mlflow() -> set[str]:
    calls = s3_calls_of_mlflow()
    unknown = calls - set(S3_CALL_ACTIONS)
    assert not unknown, f"MLflow's S3 repository also calls {sorted(unknown)}: map them"
    return set().union(*(S3_CALL_ACTIONS[call] for call in calls))


def _calls_in_functions(tree: ast.AST) -> Iterator[tuple[str, ast.Call]]:
    for function, node in _nodes_in_functions(tree):
        if isinstance(node, ast.Call):
            yield function, node


def _nodes_in_functions(tree: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """Every node with the name of the innermost function around it ("" at module level)."""

    def visit(node: ast.AST, function: str) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            inner = (
                child.name
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                else function
            )
            yield inner, child
            yield from visit(child, inner)

    yield from visit(tree, "")
