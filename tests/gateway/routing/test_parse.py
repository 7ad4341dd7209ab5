"""Request parsing: the same parameter source as MLflow's handlers, every resource named."""

from __future__ import annotations

import json

import pytest

from gateway.errors import GatewayError
from gateway.routing.parse import (
    ResourceRef,
    canonical_artifact_path,
    model_source_target,
    parse_request,
)

J = {"content-type": "application/json"}


def parse(method, path, query="", body=None, headers=None):
    raw = (
        body
        if isinstance(body, bytes)
        else (json.dumps(body).encode() if body is not None else b"")
    )
    hdrs = headers if headers is not None else (J if body is not None else {})
    return parse_request(method, path, query, hdrs, raw)


def otlp_body(spans: list[tuple[int, int]]) -> bytes:
    """An OTLP export (protobuf) with one span per (trace id, span id)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for trace_id, span_id in spans:
        span = scope.spans.add()
        span.trace_id = trace_id.to_bytes(16, "big")
        span.span_id = span_id.to_bytes(8, "big")
        span.name = "s"
    return request.SerializeToString()


def refs(parsed):
    return [(r.kind, r.id, r.action) for r in parsed.resources]


def refused(*args, **kwargs) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        parse(*args, **kwargs)
    assert info.value.status_code == 400
    return info.value


def test_get_reads_the_query_and_the_first_of_repeated_keys():
    parsed = parse("GET", "/api/2.0/mlflow/runs/get", "run_id=a&run_id=b")
    assert refs(parsed) == [("run", "a", None)]
    assert "params:query" in parsed.flags


def test_get_without_a_query_string_reads_the_json_body():
    parsed = parse("GET", "/api/2.0/mlflow/runs/get", "", {"run_id": "b"})
    assert refs(parsed) == [("run", "b", None)]
    assert "params:body" in parsed.flags


def test_get_with_both_a_query_and_a_body_is_refused():
    refused("GET", "/api/2.0/mlflow/runs/get", "x=1", {"run_id": "b"})


def test_get_query_reads_snake_case_only():
    refused("GET", "/api/2.0/mlflow/runs/get", "runId=a")


def test_run_uuid_alone_is_read():
    assert refs(parse("GET", "/api/2.0/mlflow/runs/get", "run_uuid=a")) == [("run", "a", None)]


def test_run_id_and_run_uuid_must_agree():
    body = {"run_id": "a", "run_uuid": "a", "key": "k", "value": "v"}
    assert refs(parse("POST", "/api/2.0/mlflow/runs/set-tag", body=body)) == [("run", "a", None)]
    refused("POST", "/api/2.0/mlflow/runs/set-tag", body={"run_id": "a", "run_uuid": "b"})
    refused("POST", "/ajax-api/2.0/mlflow/upload-artifact", "run_id=a&run_uuid=b&path=x")
    refused("GET", "/get-artifact", "run_id=a&run_uuid=b&path=x")


def test_post_reads_the_body_only():
    parsed = parse("POST", "/api/2.0/mlflow/runs/log-metric", "run_id=evil", {"run_id": "a"})
    assert refs(parsed) == [("run", "a", None)]


def test_post_needs_a_json_content_type():
    refused("POST", "/api/2.0/mlflow/runs/log-metric", body={"run_id": "a"}, headers={})
    headers = {"content-type": "text/plain"}
    refused("POST", "/api/2.0/mlflow/runs/log-metric", body={"run_id": "a"}, headers=headers)
    ok = {"content-type": "application/json; charset=utf-8"}
    parse("POST", "/api/2.0/mlflow/runs/log-metric", body={"run_id": "a"}, headers=ok)


def test_delete_and_patch_read_the_body_whatever_the_content_type():
    parsed = parse(
        "DELETE", "/api/2.0/mlflow/registered-models/delete", "name=evil", {"name": "m"}, {}
    )
    assert refs(parsed) == [("registered_model", "m", None)]
    refused("DELETE", "/api/2.0/mlflow/registered-models/delete", "name=m")


def test_camel_case_fields_are_read():
    assert refs(parse("POST", "/api/2.0/mlflow/runs/log-parameter", body={"runId": "a"})) == [
        ("run", "a", None)
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"run_id": "a", "runId": "b"},
        {"run_id": "a", "metrics": [{"model_id": "m-1", "modelId": "m-2"}]},
        {"experiment_ids": ["1"], "experimentIds": ["2"]},
    ],
)
def test_snake_and_camel_spellings_together_are_refused(body):
    path = (
        "/api/2.0/mlflow/runs/search"
        if "experiment_ids" in body
        else "/api/2.0/mlflow/runs/log-batch"
    )
    assert "provide only one" in refused("POST", path, body=body).message


def test_duplicate_json_keys_are_refused():
    refused("POST", "/api/2.0/mlflow/runs/log-batch", body=b'{"run_id": "a", "run_id": "b"}')


def test_double_encoded_json_is_read():
    body = json.dumps(json.dumps({"run_id": "a"})).encode()
    assert refs(parse("POST", "/api/2.0/mlflow/runs/log-batch", body=body)) == [("run", "a", None)]


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"[1]"', b"123"])
def test_unreadable_bodies_are_refused(body):
    refused("POST", "/api/2.0/mlflow/runs/log-batch", body=body)


def test_ids_must_be_strings():
    refused("POST", "/api/2.0/mlflow/runs/create", body={"experiment_id": 1})
    refused("POST", "/api/2.0/mlflow/runs/search", body={"experiment_ids": [1]})


def test_missing_ids_are_refused():
    assert "experiment_id" in refused("POST", "/api/2.0/mlflow/runs/create", body={}).message
    refused("GET", "/api/2.0/mlflow/experiments/get", "experiment_id=")


def test_path_ids_win_and_a_disagreeing_body_id_is_refused():
    parsed = parse("PATCH", "/api/2.0/mlflow/logged-models/m-1", body={"model_id": "m-1"})
    assert refs(parsed) == [("logged_model", "m-1", None)]
    refused("PATCH", "/api/2.0/mlflow/logged-models/m-1", body={"modelId": "m-2"})
    parsed = parse(
        "POST", "/api/3.0/mlflow/traces/tr-1/assessments", body={"assessment": {"trace_id": "tr-9"}}
    )
    assert refs(parsed) == [("trace", "tr-1", None)]


def test_every_experiment_of_a_search_is_named_and_narrowable():
    parsed = parse("POST", "/api/2.0/mlflow/runs/search", body={"experiment_ids": ["1", "2", "1"]})
    assert [(r.id, r.narrow) for r in parsed.resources] == [("1", True), ("2", True)]
    refused("POST", "/api/2.0/mlflow/runs/search", body={})
    body = {
        "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "4"}}]
    }
    assert refs(parse("POST", "/api/3.0/mlflow/traces/search", body=body)) == [
        ("experiment", "4", None)
    ]


def test_trace_ids_of_batch_calls_are_all_named():
    parsed = parse("GET", "/api/3.0/mlflow/traces/batchGet", "trace_ids=t1&trace_ids=t2")
    assert refs(parsed) == [("trace", "t1", None), ("trace", "t2", None)]
    parsed = parse("POST", "/api/3.0/mlflow/traces/batchGetInfos", body={"trace_ids": ["t1", "t3"]})
    assert refs(parsed) == [("trace", "t1", None), ("trace", "t3", None)]


def test_link_traces_to_run_names_the_run_and_every_trace():
    body = {"run_id": "r", "trace_ids": ["t1", "t2"]}
    assert refs(parse("POST", "/api/2.0/mlflow/traces/link-to-run", body=body)) == [
        ("run", "r", None),
        ("trace", "t1", None),
        ("trace", "t2", None),
    ]


def test_log_batch_names_logged_models_of_metrics():
    body = {"run_id": "r", "metrics": [{"key": "k", "value": 1, "timestamp": 1, "model_id": "m-1"}]}
    assert refs(parse("POST", "/api/2.0/mlflow/runs/log-batch", body=body)) == [
        ("run", "r", None),
        ("logged_model", "m-1", None),
    ]


def test_model_version_names_its_model_and_its_source():
    body = {"name": "churn", "source": "models:/m-1", "run_id": "r"}
    assert refs(parse("POST", "/api/2.0/mlflow/model-versions/create", body=body)) == [
        ("registered_model", "churn", None),
        ("run", "r", "GetRun"),
        ("logged_model", "m-1", "GetLoggedModel"),
    ]
    body = {"name": "churn", "source": "mlflow-artifacts:/5/models/m-1/artifacts"}
    parsed = parse("POST", "/api/2.0/mlflow/model-versions/create", body=body)
    assert refs(parsed)[1] == ("experiment", "5", "DownloadArtifact")
    body = {"name": "churn", "source": "file:///etc"}
    parsed = parse("POST", "/api/2.0/mlflow/model-versions/create", body=body)
    assert refs(parsed)[1] == ("workspace", "default", "RegisterExternalSource")


@pytest.mark.parametrize("source", ["dummy-source", "prompt-template"])
def test_a_prompt_version_names_only_its_prompt(source):
    body = {"name": "greeting", "source": source}
    parsed = parse("POST", "/api/2.0/mlflow/model-versions/create", body=body)
    assert refs(parsed) == [("registered_model", "greeting", None)]


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("runs:/abc/model", ("run", "abc")),
        ("models:/m-123", ("logged_model", "m-123")),
        ("models:/churn/3", ("registered_model", "churn")),
        ("models:/churn@champion", ("registered_model", "churn")),
        ("mlflow-artifacts:/7/x", ("artifact_path", "7/x")),
        ("mlflow-artifacts://host:5000/7/x", ("artifact_path", "7/x")),
        ("s3://bucket/7/x", ("workspace", "default")),
        ("/etc/passwd", ("workspace", "default")),
    ],
)
def test_model_source_targets(source, target):
    assert model_source_target(source) == target


def test_caller_chosen_artifact_location_is_an_admin_decision():
    parsed = parse("POST", "/api/2.0/mlflow/experiments/create", body={"name": "e"})
    assert refs(parsed) == [("workspace", "default", None)]
    body = {"name": "e", "artifactLocation": "s3://elsewhere"}
    parsed = parse("POST", "/api/2.0/mlflow/experiments/create", body=body)
    assert ("workspace", "default", "SetArtifactLocation") in refs(parsed)


def test_artifact_paths_are_decided_on_their_experiment():
    parsed = parse("PUT", "/api/2.0/mlflow-artifacts/artifacts/3/models/m-1/artifacts/MLmodel")
    assert refs(parsed) == [("experiment", "3", None)]
    assert parsed.artifact_path == "3/models/m-1/artifacts/MLmodel"
    parsed = parse("GET", "/api/2.0/mlflow-artifacts/artifacts", "path=3/models")
    assert refs(parsed) == [("experiment", "3", None)]


@pytest.mark.parametrize(
    "path",
    ["", "%2531/x", "1/../2", "1/./x", "/1/x", "1//x", "..", "1\\x", "workspaces/w/1/x", "c:/x"],
)
def test_bad_artifact_paths_are_refused(path):
    with pytest.raises(GatewayError):
        canonical_artifact_path(path)


def test_listing_the_artifact_root_is_refused():
    refused("GET", "/api/2.0/mlflow-artifacts/artifacts", "path=")
    refused("GET", "/api/2.0/mlflow-artifacts/artifacts", "path=..%2F2")


def test_otlp_reads_the_experiment_and_run_headers_and_every_trace():
    body = otlp_body([(1, 1), (1, 2), (0xAB, 3)])
    headers = {
        "X-MLflow-Experiment-Id": "7",
        "x-mlflow-run-id": "r",
        "content-type": "application/x-protobuf",
    }
    parsed = parse("POST", "/v1/traces", body=body, headers=headers)
    assert refs(parsed) == [
        ("experiment", "7", None),
        ("trace", f"tr-{1:032x}", None),
        ("trace", f"tr-{0xAB:032x}", None),
        ("run", "r", "LinkTracesToRun"),
    ]
    assert all(r.missing_ok for r in parsed.resources if r.kind == "trace")
    refused("POST", "/v1/traces", body=body, headers={"content-type": "application/x-protobuf"})
    twice = [
        ("content-type", "application/x-protobuf"),
        ("x-mlflow-experiment-id", "7"),
        ("x-mlflow-experiment-id", "8"),
    ]
    refused("POST", "/v1/traces", body=body, headers=twice)


def test_model_version_facts_are_reported_for_the_production_guard():
    parsed = parse(
        "DELETE", "/api/2.0/mlflow/model-versions/delete", body={"name": "m", "version": "3"}
    )
    assert (parsed.registry_call.name, parsed.registry_call.version) == ("m", "3")
    parsed = parse("GET", "/api/2.0/mlflow/registered-models/get", "name=m")
    assert parsed.registry_call.version is None


def test_head_is_parsed_like_get():
    parsed = parse("HEAD", "/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/f")
    assert parsed.action == "DownloadArtifact" and "head" in parsed.flags


def test_search_without_target_is_decided_on_the_workspace_with_a_filter():
    parsed = parse("GET", "/api/2.0/mlflow/registered-models/search", "filter=name%3D%27x%27")
    assert refs(parsed) == [("workspace", "default", None)]
    assert parsed.filter == "registered_models"


def test_resource_refs_are_values():
    assert ResourceRef("run", "a") == ResourceRef("run", "a")
    assert len({ResourceRef("run", "a"), ResourceRef("run", "a")}) == 1


def test_bodies_of_uploads_are_never_needed():
    from gateway.routing.parse import reads_body

    assert not reads_body("PUT", "/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/big.bin")
    assert not reads_body("POST", "/ajax-api/2.0/mlflow/upload-artifact")
    assert reads_body("POST", "/v1/traces")  # read for the traces its spans write into
    assert reads_body("POST", "/api/2.0/mlflow/runs/log-batch")
    assert reads_body("GET", "/api/2.0/mlflow/runs/get")  # MLflow's GET-body fallback


@pytest.mark.parametrize(
    "header", ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X-MLflow-Workspace"]
)
def test_method_override_and_workspace_headers_are_refused(header):
    refused("GET", "/api/2.0/mlflow/runs/get", "run_id=a", headers={header: "DELETE"})


def test_a_registry_call_names_what_the_production_guard_reads():
    transition = parse(
        "POST",
        "/api/2.0/mlflow/model-versions/transition-stage",
        body={"name": "m", "version": "3", "stage": "production", "archiveExistingVersions": True},
    ).registry_call
    assert (transition.name, transition.version, transition.stage) == ("m", "3", "production")
    assert transition.archive_existing_versions is True
    transition = "/api/2.0/mlflow/model-versions/transition-stage"
    for flag in ("false", 0, [False]):  # MLflow's handler cannot read these: refused first
        body = {"name": "m", "version": "3", "stage": "None", "archive_existing_versions": flag}
        refused("POST", transition, body=body)
    absent = {"name": "m", "version": "3", "stage": "None", "archive_existing_versions": None}
    assert parse("POST", transition, body=absent).registry_call.archive_existing_versions is False
    alias = parse(
        "DELETE", "/api/2.0/mlflow/registered-models/alias", body={"name": "m", "alias": "a"}
    ).registry_call
    assert (alias.alias, alias.version) == ("a", None)
    assert parse("GET", "/api/2.0/mlflow/experiments/get", "experiment_id=1").registry_call is None
