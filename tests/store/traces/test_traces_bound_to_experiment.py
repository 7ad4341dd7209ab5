"""A trace belongs to its experiment for good, and only the store says where its files live
(moto's in-process DynamoDB; the same rules over HTTP: tests/authz_e2e/test_traces_*.py)."""

from __future__ import annotations

import pytest
from mlflow.entities.assessment import AssessmentSource, Feedback
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION
from store_support import ARTIFACT_ROOT
from test_traces_support import new_trace_id, span, trace_info

from store.dynamo.expressions import Update
from store.keys import trace_key

RESERVED = ["mlflow.artifactLocation", "mlflow.trace.spansLocation", "mlflow.trace.archiveLocation"]


@pytest.fixture
def experiments(moto_store):
    return moto_store.create_experiment("mine"), moto_store.create_experiment("theirs")


def error_code(call, *args, **kwargs) -> str:
    with pytest.raises(MlflowException) as info:
        call(*args, **kwargs)
    return info.value.error_code


def own_location(experiment_id: str, trace_id: str) -> str:
    return f"{ARTIFACT_ROOT}/{experiment_id}/traces/{trace_id}/artifacts"


def test_start_trace_never_moves_a_trace(moto_store, experiments):
    mine, theirs = experiments
    trace_id = new_trace_id()
    moto_store.start_trace(trace_info(trace_id, theirs, request_preview="theirs"))
    moved = trace_info(trace_id, mine, request_preview="mine")
    assert error_code(moto_store.start_trace, moved) == "RESOURCE_ALREADY_EXISTS"
    kept = moto_store.get_trace_info(trace_id)
    assert (kept.experiment_id, kept.request_preview) == (theirs, "theirs")


def test_spans_of_another_experiments_trace_are_refused_before_any_write(moto_store, experiments):
    mine, theirs = experiments
    trace_id, own = new_trace_id(), new_trace_id()
    moto_store.log_spans(theirs, [span(trace_id, 1, name="theirs")])
    batch = [span(own, 1, name="mine"), span(trace_id, 1, name="overwrite"), span(trace_id, 2)]
    assert error_code(moto_store.log_spans, mine, batch) == "RESOURCE_ALREADY_EXISTS"
    assert [s.name for s in moto_store.get_trace(trace_id).data.spans] == ["theirs"]
    assert list(moto_store.table.query(f"TR#{own}")) == []  # nothing of the batch was written


def test_a_deleted_trace_id_can_only_come_back_in_its_experiment(moto_store, experiments):
    mine, theirs = experiments
    trace_id = new_trace_id()
    moto_store.start_trace(trace_info(trace_id, theirs))
    moto_store.log_spans(theirs, [span(trace_id, 1)])
    assert moto_store.delete_traces(theirs, trace_ids=[trace_id]) == 1
    assert error_code(moto_store.start_trace, trace_info(trace_id, mine)) == (
        "RESOURCE_ALREADY_EXISTS"
    )
    assert error_code(moto_store.log_spans, mine, [span(trace_id, 1)]) == (
        "RESOURCE_ALREADY_EXISTS"
    )
    assert error_code(moto_store.get_trace_info, trace_id) == "RESOURCE_DOES_NOT_EXIST"
    moto_store.log_spans(theirs, [span(trace_id, 3, name="again")])
    assert [s.name for s in moto_store.get_trace(trace_id).data.spans] == ["again"]
    assert moto_store.get_trace_info(trace_id).experiment_id == theirs


@pytest.mark.parametrize("key", RESERVED)
def test_reserved_tags_are_refused_by_the_store(moto_store, experiments, key):
    trace_id = new_trace_id()
    moto_store.start_trace(trace_info(trace_id, experiments[0]))
    assert error_code(moto_store.set_trace_tag, trace_id, key, "/etc") == "INVALID_PARAMETER_VALUE"
    assert error_code(moto_store.delete_trace_tag, trace_id, key) == "INVALID_PARAMETER_VALUE"


def test_reserved_tags_given_at_start_or_in_span_attributes_are_dropped(moto_store, experiments):
    mine = experiments[0]
    trace_id = new_trace_id()
    given = {key: "/etc" for key in RESERVED}
    moto_store.log_spans(
        mine, [span(trace_id, 1, attributes={f"mlflow.traceTag.{k}": v for k, v in given.items()})]
    )
    started = moto_store.start_trace(trace_info(trace_id, mine, tags={**given, "team": "cv"}))
    expected = {
        "team": "cv",
        MLFLOW_ARTIFACT_LOCATION: own_location(mine, trace_id),
        "mlflow.trace.spansLocation": "TRACKING_STORE",
    }
    assert started.tags == expected
    assert moto_store.get_trace_info(trace_id).tags == expected


def test_the_artifact_location_of_an_older_trace_item_derives_from_its_experiment(
    moto_store, experiments
):
    mine = experiments[0]
    trace_id = new_trace_id()
    moto_store.start_trace(trace_info(trace_id, mine))
    # an item written before the location was kept apart, with a tag set by a client
    update = Update().remove("artifact_location").set(("tags", MLFLOW_ARTIFACT_LOCATION), "/etc")
    moto_store.table.update(*trace_key(trace_id), update)
    location = own_location(mine, trace_id)
    assert moto_store.get_trace_info(trace_id).tags[MLFLOW_ARTIFACT_LOCATION] == location
    found, _ = moto_store.search_traces(locations=[mine])
    assert found[0].tags[MLFLOW_ARTIFACT_LOCATION] == location


def test_get_trace_without_spans_is_not_found(moto_store, experiments):
    trace_id = new_trace_id()
    moto_store.start_trace(trace_info(trace_id, experiments[0]))
    assert error_code(moto_store.get_trace, trace_id) == "RESOURCE_DOES_NOT_EXIST"
    assert error_code(moto_store.batch_get_traces, [trace_id]) == "RESOURCE_DOES_NOT_EXIST"


def test_an_assessment_id_is_not_overwritten_by_a_create(moto_store, experiments):
    trace_id = new_trace_id()
    moto_store.start_trace(trace_info(trace_id, experiments[0]))
    source = AssessmentSource(source_type="HUMAN", source_id="alice")
    first = Feedback(name="q", value=1, source=source, trace_id=trace_id)
    first.assessment_id = "a-fixed"
    moto_store.create_assessment(first)
    second = Feedback(name="q", value=2, source=source, trace_id=trace_id)
    second.assessment_id = "a-fixed"
    assert error_code(moto_store.create_assessment, second) == "RESOURCE_ALREADY_EXISTS"
    assert moto_store.get_assessment(trace_id, "a-fixed").value == 1


@pytest.mark.parametrize("trace_id", ["", "..", "../1/traces/x", "a/b", "x" * 51])
def test_trace_ids_are_plain_names(moto_store, experiments, trace_id):
    info = trace_info(trace_id, experiments[0])
    assert error_code(moto_store.start_trace, info) == "INVALID_PARAMETER_VALUE"
