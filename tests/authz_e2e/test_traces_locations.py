"""Where a trace's files live is the store's to say: the tags naming them are reserved on every
path that sets or deletes trace tags, and a trace's artifact location derives from its
experiment, so no tag sends `get-trace-artifact` into another experiment's files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient
from traces_support import V3, export_json, new_otel_id, span_json, start_trace, trace_info

ALICE = ("alice-loc", ("vision",))
BOB = ("bob-loc", ("nlp",))
BOB_SECRET = "bob-secret-span-data"
RESERVED = ["mlflow.artifactLocation", "mlflow.trace.spansLocation", "mlflow.trace.archiveLocation"]
CLIENT_SCRIPT = Path(__file__).with_name("trace_client_script.py")


@pytest.fixture(scope="module")
def world(authz_stack):
    with authz_stack.as_user(*ALICE):
        alice_exp = MlflowClient().create_experiment("tr-loc-alice")
    with authz_stack.as_user(*BOB):
        bob_exp = MlflowClient().create_experiment("tr-loc-bob")
    bob_trace = f"tr-{new_otel_id()}"
    bob_dir = f"{bob_exp}/traces/{bob_trace}/artifacts"
    with authz_stack.http(*BOB) as bob:
        assert start_trace(bob, bob_trace, bob_exp).status_code == 200
        uploaded = bob.put(
            f"/api/2.0/mlflow-artifacts/artifacts/{bob_dir}/traces.json",
            content=json.dumps({"spans": [{"name": BOB_SECRET}]}).encode(),
        )
        assert uploaded.status_code == 200, uploaded.text
        assert BOB_SECRET in trace_artifact(bob, bob_trace).text  # what alice must never read
    return {
        "alice_exp": alice_exp,
        "bob_exp": bob_exp,
        "bob_location": f"mlflow-artifacts:/{bob_dir}",
    }


@pytest.fixture
def alice(authz_stack):
    with authz_stack.http(*ALICE) as http:
        yield http


def trace_artifact(http, trace_id: str):
    return http.get("/ajax-api/3.0/mlflow/get-trace-artifact", params={"request_id": trace_id})


def own_location(experiment_id: str, trace_id: str) -> str:
    return f"mlflow-artifacts:/{experiment_id}/traces/{trace_id}/artifacts"


def alice_trace(alice, world) -> str:
    trace_id = f"tr-{new_otel_id()}"
    assert start_trace(alice, trace_id, world["alice_exp"]).status_code == 200
    return trace_id


@pytest.mark.parametrize("version", [2, 3])
def test_reserved_tags_cannot_be_set_or_deleted(alice, world, version):
    trace_id = alice_trace(alice, world)
    path = f"/api/{version}.0/mlflow/traces/{trace_id}/tags"
    for key in RESERVED:
        set_tag = alice.patch(path, json={"key": key, "value": world["bob_location"]})
        assert set_tag.status_code == 400, key
        assert set_tag.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        deleted = alice.request("DELETE", path, json={"key": key})
        assert deleted.status_code == 400, key
        assert deleted.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    tags = trace_info(alice, trace_id)["tags"]
    assert tags == {"mlflow.artifactLocation": own_location(world["alice_exp"], trace_id)}
    assert BOB_SECRET not in trace_artifact(alice, trace_id).text
    assert alice.patch(path, json={"key": "note", "value": "ok"}).status_code == 200


def test_start_trace_ignores_reserved_tags_a_client_sends(alice, world):
    trace_id = f"tr-{new_otel_id()}"
    given = {key: world["bob_location"] for key in RESERVED}
    given["mlflow.trace.spansLocation"] = "ARCHIVE_REPO"
    response = start_trace(alice, trace_id, world["alice_exp"], tags={**given, "team": "cv"})
    assert response.status_code == 200
    expected = {
        "team": "cv",
        "mlflow.artifactLocation": own_location(world["alice_exp"], trace_id),
    }
    assert response.json()["trace"]["trace_info"]["tags"] == expected
    assert trace_info(alice, trace_id)["tags"] == expected
    assert BOB_SECRET not in trace_artifact(alice, trace_id).text


def test_otlp_trace_tag_attributes_cannot_set_reserved_tags(alice, world):
    otel_id = new_otel_id()
    attributes = {f"mlflow.traceTag.{key}": json.dumps(world["bob_location"]) for key in RESERVED}
    attributes["mlflow.traceTag.team"] = json.dumps("cv")
    root = span_json(otel_id, "e1" * 8, "root", attributes=attributes)
    assert export_json(alice, world["alice_exp"], [root]).status_code == 200
    tags = trace_info(alice, f"tr-{otel_id}")["tags"]
    assert tags == {
        "team": "cv",
        "mlflow.artifactLocation": own_location(world["alice_exp"], f"tr-{otel_id}"),
        "mlflow.trace.spansLocation": "TRACKING_STORE",
    }


def test_get_trace_of_a_trace_without_spans_is_not_found(alice, world):
    trace_id = alice_trace(alice, world)
    for params in ({"trace_id": trace_id}, {"trace_id": trace_id, "allow_partial": "true"}):
        response = alice.get(f"{V3}/get", params=params)
        assert response.status_code == 404, response.text
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    response = alice.get(f"{V3}/batchGet", params={"trace_ids": trace_id})
    assert (
        response.status_code == 404 and response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    )
    # the UI's view of it still works: the trace's own (empty) artifact location answers 404
    assert trace_artifact(alice, trace_id).status_code == 404


def test_an_assessment_id_is_never_taken_over(alice, world):
    trace_id = alice_trace(alice, world)

    def create(value: int):
        assessment = {
            "assessment_id": "a-fixed",
            "assessment_name": "quality",
            "source": {"source_type": "HUMAN", "source_id": "alice"},
            "feedback": {"value": value},
        }
        return alice.post(f"{V3}/{trace_id}/assessments", json={"assessment": assessment})

    assert create(1).status_code == 200
    again = create(2)
    assert again.status_code == 400
    assert again.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    kept = alice.get(f"{V3}/{trace_id}/assessments/a-fixed").json()["assessment"]
    assert kept["feedback"]["value"] == 1


def test_mlflow_client_tracing_works_through_the_gateway(authz_stack, world, tmp_path):
    env = {
        "MLFLOW_TRACKING_URI": authz_stack.url,
        "MLFLOW_TRACKING_TOKEN": authz_stack.token(*ALICE),
        "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, str(CLIENT_SCRIPT), world["alice_exp"]],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    trace_id = seen["trace_id"]
    assert seen["spans"] == ["answer", "lookup"]
    assert seen["outputs"] == "42"
    assert seen["tags"]["mlflow.artifactLocation"] == own_location(world["alice_exp"], trace_id)
    assert seen["tags"]["mlflow.trace.spansLocation"] == "TRACKING_STORE"
    assert seen["tags"]["reviewed"] == "yes"
    assert trace_id in seen["searched"]
    assert seen["searched_spans"][trace_id] == ["answer", "lookup"]
