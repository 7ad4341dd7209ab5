"""Every field the route table reads exists in the protobuf request MLflow's handler parses."""

from __future__ import annotations

import pytest
from mlflow_inventory import flask_template

from gateway.routing import route_table
from gateway.routing.model import PROTO


def proto_requests() -> dict[tuple[str, str], object]:
    """(method, path template) → request message descriptor, from MLflow's service protos."""
    from mlflow.protos import databricks_pb2, mlflow_artifacts_pb2, model_registry_pb2, service_pb2

    out = {}
    services = (
        service_pb2.MlflowService,
        model_registry_pb2.ModelRegistryService,
        mlflow_artifacts_pb2.MlflowArtifactsService,
    )
    for service in services:
        for method in service.DESCRIPTOR.methods:
            for endpoint in method.GetOptions().Extensions[databricks_pb2.rpc].endpoints:
                tail = flask_template(endpoint.path)
                for prefix in ("/api", "/ajax-api"):
                    path = f"{prefix}/{endpoint.since.major}.0{tail}"
                    out[(endpoint.method, path)] = method.input_type
    return out


def _has(descriptor, dotted: str) -> bool:
    for part in dotted.split("."):
        field = descriptor.fields_by_name.get(part.removesuffix("[]"))
        if field is None or (part.endswith("[]") != field.is_repeated):
            return False
        descriptor = field.message_type
    return True


def _plain_fields(source: str) -> list[str]:
    if not source or source.startswith(("{", "header:", "artifact:{")) or source == "source":
        return []
    source = source.removeprefix("artifact:").removeprefix("absent:")
    return source.split("|")


@pytest.fixture(scope="module")
def requests():
    return proto_requests()


def test_proto_rows_read_fields_the_request_message_has(requests):
    checked, problems = 0, []
    for route in route_table().routes:
        descriptor = requests.get((route.method, route.path))
        if not route.offered or descriptor is None:
            continue
        if route.params != PROTO:  # served natively (artifact streams): path ids only
            assert not [f for s in route.refs for f in _plain_fields(s.source)], route
            continue
        for spec in route.refs:
            for name in _plain_fields(spec.source):
                checked += 1
                if not _has(descriptor, name):
                    problems.append((route.method, route.path, descriptor.name, name))
    assert not problems, problems
    assert checked > 150


def test_path_parameters_are_named_as_in_mlflow(requests):
    for route in route_table().routes:
        for spec in route.refs:
            if spec.source.startswith(("{", "artifact:{")):
                name = spec.source.removeprefix("artifact:").strip("{}")
                assert f"{{{name}}}" in route.path or f"{{{name}:path}}" in route.path, route
