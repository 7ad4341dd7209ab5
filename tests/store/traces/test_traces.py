"""Traces, spans and assessments on the DynamoDB tracking store (moto's in-process DynamoDB)."""

from __future__ import annotations

import base64
import json
import os

import pytest
from mlflow.entities.assessment import AssessmentSource, Expectation, Feedback
from mlflow.entities.trace_state import TraceState
from mlflow.exceptions import MlflowException
from mlflow.tracing.constant import TraceMetadataKey, TraceTagKey
from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION
from test_traces_support import new_trace_id, span, trace_info

from store.traces.items import PART_BYTES

HUMAN = AssessmentSource(source_type="HUMAN", source_id="alice")


def test_start_then_spans_gives_a_tracking_store_trace(store, experiment_id):
    trace_id = new_trace_id()
    info = trace_info(trace_id, experiment_id, tags={TraceTagKey.TRACE_NAME: "predict", "k": "v"})
    started = store.start_trace(info)
    assert started.tags["k"] == "v" and started.tags[TraceTagKey.TRACE_NAME] == "predict"
    assert started.trace_metadata[TraceMetadataKey.TRACE_INFO_FINALIZED] == "true"
    assert started.tags[MLFLOW_ARTIFACT_LOCATION].endswith(f"/traces/{trace_id}/artifacts")
    store.log_spans(experiment_id, [span(trace_id, 1, name="root"), span(trace_id, 2, parent=1)])
    trace = store.get_trace(trace_id)
    assert trace.info.tags[TraceTagKey.SPANS_LOCATION] == "TRACKING_STORE"
    assert [s.name for s in trace.data.spans] == ["root", "span"]
    assert trace.info.request_time == info.request_time  # start_trace's values win


def test_spans_before_start_trace_derive_the_info(store, experiment_id):
    trace_id = new_trace_id()
    root = span(
        trace_id,
        1,
        name="root",
        status="ERROR",
        start_ns=2_000_000_000,
        end_ns=9_000_000_000,
        attributes={"mlflow.spanInputs": {"q": "hi"}},
    )
    child = span(trace_id, 2, parent=1, start_ns=1_000_000_000, end_ns=3_000_000_000)
    store.log_spans(experiment_id, [child, root])
    info = store.get_trace_info(trace_id)
    assert info.request_time == 1000 and info.execution_duration == 8000
    assert info.state == TraceState.ERROR
    assert info.request_preview == '{"q": "hi"}'
    store.start_trace(trace_info(trace_id, experiment_id, request_time=5, duration=7))
    info = store.get_trace_info(trace_id)
    assert (info.request_time, info.execution_duration) == (5, 7)
    assert info.tags[TraceTagKey.SPANS_LOCATION] == "TRACKING_STORE"


def test_round_trips_of_the_trace_calls(store, experiment_id):
    trace_id = new_trace_id()
    rt = store.table.round_trips
    rt.reset()
    store.start_trace(trace_info(trace_id, experiment_id))
    assert rt.by_operation() == {"GetItem": 1, "UpdateItem": 1, "PutItem": 1}
    rt.reset()
    store.log_spans(
        experiment_id, [span(trace_id, n, parent=None if n == 1 else 1) for n in (1, 2)]
    )
    assert rt.by_operation() == {"BatchGetItem": 1, "BatchWriteItem": 1, "UpdateItem": 1}
    rt.reset()
    store.get_trace_info(trace_id)
    assert rt.by_operation() == {"GetItem": 1}
    rt.reset()
    store.get_trace(trace_id)
    assert rt.by_operation() == {"Query": 1}
    rt.reset()
    store.batch_get_trace_infos([trace_id, new_trace_id()])
    assert rt.by_operation() == {"BatchGetItem": 1}


def test_big_spans_are_compressed_and_split(store, experiment_id):
    trace_id = new_trace_id()
    noise = base64.b64encode(os.urandom(3 * PART_BYTES)).decode()  # compresses to ~3 parts
    big = span(trace_id, 1, attributes={"blob": noise})
    store.log_spans(experiment_id, [big])
    trace = store.get_trace(trace_id, allow_partial=True)
    stored = json.loads(trace.data.spans[0].to_dict()["attributes"]["blob"])
    assert len(stored) > 2 * PART_BYTES and noise.startswith(stored)
    parts = [i for i in store.table.query(f"TR#{trace_id}", sk_prefix="SPAN#")]
    assert len(parts) >= 2


def test_unknown_trace_and_bad_input(store, experiment_id):
    with pytest.raises(MlflowException) as info:
        store.get_trace_info("tr-missing")
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as info:
        store.set_trace_tag("tr-missing", "k", "v")
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as info:
        store.search_traces(locations=[experiment_id], filter_string="nonsense.x = 'y'")
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as info:
        store.start_trace(trace_info(new_trace_id(), "424242"))
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_tags_name_and_delete(store, experiment_id):
    trace_id = new_trace_id()
    store.start_trace(trace_info(trace_id, experiment_id))
    store.set_trace_tag(trace_id, "k", "v")
    store.set_trace_tag(trace_id, TraceTagKey.TRACE_NAME, "renamed")
    info = store.get_trace_info(trace_id)
    assert info.tags["k"] == "v" and info.tags[TraceTagKey.TRACE_NAME] == "renamed"
    store.delete_trace_tag(trace_id, "k")
    with pytest.raises(MlflowException, match="No trace tag"):
        store.delete_trace_tag(trace_id, "k")
    assert "k" not in store.get_trace_info(trace_id).tags


def test_search_pages_and_run_links(store, experiment_id):
    run = store.create_run(experiment_id, "alice", 0, [], "r")
    ids = []
    for n in range(5):
        trace_id = new_trace_id()
        ids.append(trace_id)
        store.start_trace(trace_info(trace_id, experiment_id, request_time=1000 + n))
    store.link_traces_to_run(ids[:2], run.info.run_id)
    found, token = store.search_traces(locations=[experiment_id], max_results=2)
    assert [t.trace_id for t in found] == ids[::-1][:2]
    found2, _ = store.search_traces(locations=[experiment_id], max_results=2, page_token=token)
    assert [t.trace_id for t in found2] == ids[::-1][2:4]
    linked, _ = store.search_traces(
        locations=[experiment_id], filter_string=f"run_id = '{run.info.run_id}'"
    )
    assert {t.trace_id for t in linked} == set(ids[:2])
    store.table.round_trips.reset()
    store.search_traces(locations=[experiment_id], filter_string="timestamp_ms > 1001")
    assert store.table.round_trips.by_operation() == {"Query": 1}


def test_delete_traces_by_ids_and_by_age(store, experiment_id):
    ids = [new_trace_id() for _ in range(4)]
    for n, trace_id in enumerate(ids):
        store.start_trace(trace_info(trace_id, experiment_id, request_time=1000 * (n + 1)))
        store.log_spans(experiment_id, [span(trace_id, 1)])
    assert store.delete_traces(experiment_id, trace_ids=[ids[0]]) == 1
    assert store.delete_traces(experiment_id, max_timestamp_millis=3000, max_traces=1) == 1
    left, _ = store.search_traces(locations=[experiment_id])
    assert [t.trace_id for t in left] == [ids[3], ids[2]]
    # What stays of a deleted trace: a tombstone that keeps its id bound to its experiment.
    left = list(store.table.query(f"TR#{ids[1]}"))
    assert [(i["sk"], i["experiment_id"], i["deleted"]) for i in left] == [
        ("INFO", experiment_id, True)
    ]
    with pytest.raises(MlflowException) as info:
        store.get_trace_info(ids[1])
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_assessments_create_override_update_delete(store, experiment_id):
    trace_id = new_trace_id()
    store.start_trace(trace_info(trace_id, experiment_id))
    first = store.create_assessment(
        Feedback(name="quality", value=0.5, source=HUMAN, trace_id=trace_id)
    )
    assert first.assessment_id and store.get_assessment(trace_id, first.assessment_id).value == 0.5
    second = store.create_assessment(
        Feedback(
            name="quality",
            value=0.9,
            source=HUMAN,
            trace_id=trace_id,
            overrides=first.assessment_id,
        )
    )
    assert store.get_assessment(trace_id, first.assessment_id).valid is False
    updated = store.update_assessment(trace_id, second.assessment_id, rationale="better")
    assert updated.rationale == "better" and updated.value == 0.9
    found, _ = store.search_traces(
        locations=[experiment_id], filter_string="feedback.quality > 0.8"
    )
    assert [t.trace_id for t in found] == [trace_id]
    store.delete_assessment(trace_id, second.assessment_id)
    assert store.get_assessment(trace_id, first.assessment_id).valid is True
    with pytest.raises(MlflowException) as info:
        store.get_assessment(trace_id, second.assessment_id)
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    expectation = store.create_assessment(
        Expectation(name="expected", value="x", source=HUMAN, trace_id=trace_id)
    )
    with pytest.raises(MlflowException, match="Cannot update feedback value"):
        store.update_assessment(trace_id, expectation.assessment_id, feedback=first.feedback)
    assert len(store.get_trace_info(trace_id).assessments) == 2


def test_tag_and_assessment_writes_are_single_item_updates(store, experiment_id):
    trace_id = new_trace_id()
    store.start_trace(trace_info(trace_id, experiment_id))
    rt = store.table.round_trips
    rt.reset()
    store.set_trace_tag(trace_id, "k", "v")
    assert rt.by_operation() == {"UpdateItem": 1}
    rt.reset()
    store.create_assessment(Feedback(name="ok", value=True, source=HUMAN, trace_id=trace_id))
    assert rt.by_operation() == {"GetItem": 1, "UpdateItem": 1}


def test_mlflow_2_trace_calls_are_not_implemented(store, experiment_id):
    with pytest.raises(MlflowException) as info:
        store.deprecated_start_trace_v2(experiment_id, 0, {}, {})
    assert info.value.error_code == "NOT_IMPLEMENTED"
