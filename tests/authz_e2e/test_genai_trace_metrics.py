"""Trace metrics (the experiment Overview's charts) through the gateway: traces logged with
MLflow's tracing client, the Overview's queries answered from them through MLflow's REST store
and as the UI sends them, and decided on the experiment (an outsider is refused)."""

from __future__ import annotations

import time

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import AssessmentSource
from mlflow.entities.trace_metrics import AggregationType, MetricAggregation, MetricViewType
from mlflow.tracking._tracking_service.utils import _get_store
from mlflow_calls import denied

ALICE = ("alice-tm", ("tm-vision",))
BOB = ("bob-tm", ("tm-nlp",))
DAY = 86_400
COUNT = [MetricAggregation(AggregationType.COUNT)]


@pytest.fixture(scope="module")
def world(authz_stack):
    with authz_stack.as_user(*ALICE):
        experiment_id = MlflowClient().create_experiment("tm-alice")
        mlflow.set_experiment(experiment_id=experiment_id)

        @mlflow.trace(name="answer")
        def answer(question: str) -> str:
            with mlflow.start_span(name="search", span_type="TOOL"):
                pass
            return question.upper()

        for question in ("a", "b", "c"):
            answer(question)
        mlflow.flush_trace_async_logging()
        trace_id = mlflow.get_last_active_trace_id()
        source = AssessmentSource(source_type="HUMAN", source_id="alice")
        mlflow.log_feedback(trace_id=trace_id, name="helpful", value=True, source=source)
    now = int(time.time() * 1000)
    return {"experiment_id": experiment_id, "window": (now - 7 * DAY * 1000, now + 60_000)}


def query(world, view, metric, aggregations, dimensions=(), filters=(), interval=None):
    start, end = world["window"]
    return _get_store().query_trace_metrics(
        [world["experiment_id"]], view, metric, aggregations, list(dimensions), list(filters),
        interval, start, end,
    )  # fmt: skip


def test_the_overview_charts_load_from_the_traces(authz_stack, world):
    with authz_stack.as_user(*ALICE):
        (count,) = query(
            world, MetricViewType.TRACES, "trace_count", COUNT, ["trace_status"], (), DAY
        )
        assert count.dimensions["trace_status"] == "OK"
        assert count.values == {"COUNT": 3}
        (tools,) = query(
            world, MetricViewType.SPANS, "span_count", COUNT, ["span_name"], ['span.type = "TOOL"']
        )
        assert (tools.dimensions, tools.values) == ({"span_name": "search"}, {"COUNT": 3})
        avg = [MetricAggregation(AggregationType.AVG)]
        (latency,) = query(world, MetricViewType.TRACES, "latency", avg)
        assert latency.values["AVG"] >= 0
        (feedback,) = query(
            world, MetricViewType.ASSESSMENTS, "assessment_count", COUNT, ["assessment_name"]
        )
        assert (feedback.dimensions, feedback.values) == (
            {"assessment_name": "helpful"},
            {"COUNT": 1},
        )


def test_the_uis_own_request_is_answered(authz_stack, world):
    start, end = world["window"]
    body = {
        "experiment_ids": [world["experiment_id"]],
        "view_type": "TRACES",
        "metric_name": "latency",
        "aggregations": [
            {"aggregation_type": "PERCENTILE", "percentile_value": p} for p in (50, 90, 99)
        ],
        "time_interval_seconds": DAY,
        "start_time_ms": start,
        "end_time_ms": end,
    }
    with authz_stack.http(*ALICE) as http:
        answer = http.post("/ajax-api/3.0/mlflow/traces/metrics", json=body)
        assert answer.status_code == 200, answer.text
        (point,) = answer.json()["data_points"]
        assert set(point["values"]) == {"P50.0", "P90.0", "P99.0"}
    with authz_stack.http(*BOB) as http:
        assert http.post("/ajax-api/3.0/mlflow/traces/metrics", json=body).status_code == 403


def test_an_outsider_is_refused(authz_stack, world):
    with authz_stack.as_user(*BOB):
        assert denied(lambda: query(world, MetricViewType.TRACES, "trace_count", COUNT))
