"""A trace id belongs to one experiment for good: StartTraceV3 and OTLP span exports naming a
trace of another experiment are refused, by the gateway for callers who may not edit that
experiment and by the store for everyone, and nothing of the trace leaks in the answer."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from traces_support import (
    V3,
    export_json,
    export_protobuf,
    new_otel_id,
    span_json,
    span_names,
    start_trace,
    trace_info,
)

ALICE = ("alice-tr", ("vision",))
BOB = ("bob-tr", ("nlp",))
DAVE = ("dave-tr", ("vision", "nlp"))  # editor of both experiments
SECRET = "alice-secret-prompt"


@pytest.fixture(scope="module")
def world(authz_stack):
    with authz_stack.as_user(*ALICE):
        alice_exp = MlflowClient().create_experiment("tr-own-alice")
    with authz_stack.as_user(*BOB):
        bob_exp = MlflowClient().create_experiment("tr-own-bob")
    otel_id = new_otel_id()
    trace_id = f"tr-{otel_id}"
    with authz_stack.http(*ALICE) as alice:
        span = span_json(otel_id, "a1" * 8, "alice-span", attributes={"input": SECRET})
        assert export_json(alice, alice_exp, [span]).status_code == 200
        assert start_trace(alice, trace_id, alice_exp, preview=SECRET).status_code == 200
    return {"alice_exp": alice_exp, "bob_exp": bob_exp, "otel_id": otel_id, "trace_id": trace_id}


@pytest.fixture
def alice(authz_stack):
    with authz_stack.http(*ALICE) as http:
        yield http


@pytest.fixture
def bob(authz_stack):
    with authz_stack.http(*BOB) as http:
        yield http


@pytest.fixture
def dave(authz_stack):
    with authz_stack.http(*DAVE) as http:
        yield http


def assert_untouched(alice, world) -> None:
    info = trace_info(alice, world["trace_id"])
    assert info["trace_location"]["mlflow_experiment"]["experiment_id"] == world["alice_exp"]
    assert info["request_preview"] == SECRET
    assert span_names(alice, world["trace_id"]) == ["alice-span"]


def bob_sees(bob, world) -> list[str]:
    body = {"locations": [{"mlflow_experiment": {"experiment_id": world["bob_exp"]}}]}
    response = bob.post(f"{V3}/search", json=body)
    assert response.status_code == 200, response.text
    return [t["trace_id"] for t in response.json().get("traces", [])]


def test_start_trace_with_another_experiments_trace_id_is_denied(alice, bob, world):
    response = start_trace(bob, world["trace_id"], world["bob_exp"], preview="bob")
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert SECRET not in response.text
    assert_untouched(alice, world)
    assert world["trace_id"] not in bob_sees(bob, world)


def test_the_store_refuses_to_move_a_trace_for_an_editor_of_both_experiments(alice, dave, world):
    response = start_trace(dave, world["trace_id"], world["bob_exp"], preview="dave")
    assert response.status_code == 400
    assert response.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    assert SECRET not in response.text
    assert_untouched(alice, world)


@pytest.mark.parametrize("export", [export_json, export_protobuf], ids=["json", "protobuf"])
def test_otlp_spans_into_another_experiments_trace_are_denied(alice, bob, world, export):
    spans = [
        span_json(world["otel_id"], "a1" * 8, "bob-overwrites"),  # alice's span id
        span_json(world["otel_id"], "b2" * 8, "bob-adds", attributes={"mlflow.traceTag.x": "y"}),
    ]
    response = export(bob, world["bob_exp"], spans)
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert_untouched(alice, world)
    assert "x" not in trace_info(alice, world["trace_id"])["tags"]


def test_compressed_otlp_bodies_are_read_too(alice, bob, world):
    spans = [span_json(world["otel_id"], "b3" * 8, "bob-gzip")]
    response = export_json(bob, world["bob_exp"], spans, compress=True)
    assert response.status_code == 403
    assert_untouched(alice, world)


def test_one_foreign_trace_refuses_the_whole_batch(alice, bob, world):
    own_otel = new_otel_id()
    spans = [
        span_json(own_otel, "c1" * 8, "bob-own"),
        span_json(world["otel_id"], "c2" * 8, "bob-foreign"),
    ]
    assert export_json(bob, world["bob_exp"], spans).status_code == 403
    assert_untouched(alice, world)
    assert bob.get(f"{V3}/tr-{own_otel}").status_code == 403  # nothing of the batch was written


def test_the_store_refuses_spans_into_another_experiments_trace(alice, dave, world):
    own_otel = new_otel_id()
    spans = [
        span_json(own_otel, "d1" * 8, "dave-own"),
        span_json(world["otel_id"], "a1" * 8, "dave-overwrites"),
    ]
    response = export_json(dave, world["bob_exp"], spans)
    assert response.status_code == 400
    assert response.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    assert_untouched(alice, world)
    # refused before anything was written: dave's own trace does not exist (403: unknown id)
    assert dave.get(f"{V3}/tr-{own_otel}").status_code == 403


def test_a_deleted_trace_id_stays_with_its_experiment(alice, bob, dave, world):
    trace_id = f"tr-{new_otel_id()}"
    assert start_trace(alice, trace_id, world["alice_exp"], preview=SECRET).status_code == 200
    assert trace_info(alice, trace_id)["request_preview"] == SECRET  # its owner is now cached
    deleted = alice.post(
        f"{V3}/delete-traces", json={"experiment_id": world["alice_exp"], "request_ids": [trace_id]}
    )
    assert deleted.status_code == 200 and deleted.json()["traces_deleted"] == 1
    assert alice.get(f"{V3}/{trace_id}").status_code == 404
    # bob cannot take the id into his experiment: alice would then read his trace
    assert start_trace(bob, trace_id, world["bob_exp"], preview="bob-data").status_code == 403
    assert start_trace(dave, trace_id, world["bob_exp"], preview="dave-data").status_code == 400
    assert alice.get(f"{V3}/{trace_id}").status_code == 404
    # its own experiment may use it again
    assert start_trace(alice, trace_id, world["alice_exp"], preview="again").status_code == 200
    assert trace_info(alice, trace_id)["request_preview"] == "again"


def test_an_unknown_trace_id_is_not_remembered_as_missing(alice, bob, world):
    trace_id = f"tr-{new_otel_id()}"
    assert bob.get(f"{V3}/{trace_id}").status_code == 403  # unknown: decided, not cached
    assert start_trace(alice, trace_id, world["alice_exp"], preview=SECRET).status_code == 200
    response = start_trace(bob, trace_id, world["bob_exp"], preview="bob")
    assert response.status_code == 403 and SECRET not in response.text
    assert trace_info(alice, trace_id)["request_preview"] == SECRET


@pytest.mark.parametrize("trace_id", ["../1/traces/x", "a/b", "", "x" * 51])
def test_a_trace_id_must_be_a_plain_name(alice, world, trace_id):
    response = start_trace(alice, trace_id, world["alice_exp"])
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
