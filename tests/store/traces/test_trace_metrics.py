"""Trace metrics (the Overview page's charts) on DynamoDB answer as MLflow's SqlAlchemyStore
(sqlite): every metric of the traces, spans and assessments views the Overview asks, with and
without time buckets, dimensions and filters, over one seeded workload; and the requests a
query makes (one Query per experiment, no span read)."""

from __future__ import annotations

import json
import random
import uuid

import pytest
from mlflow.entities.assessment import AssessmentSource, Expectation, Feedback
from mlflow.entities.trace_metrics import AggregationType, MetricAggregation, MetricViewType
from mlflow.entities.trace_state import TraceState
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracing.constant import TraceMetadataKey, TraceTagKey
from test_traces_support import span, trace_info

from store.tracking import DynamoTrackingStore

SEED = 20261205
START = 1_700_000_000_000
DAY = 86_400
SOURCE = AssessmentSource(source_type="HUMAN", source_id="alice")
T, S, A = MetricViewType.TRACES, MetricViewType.SPANS, MetricViewType.ASSESSMENTS


def agg(kind: str, percentile: float | None = None) -> MetricAggregation:
    return MetricAggregation(AggregationType(kind), percentile)


FEEDBACK = 'assessment.type = "feedback"'
P = [agg("PERCENTILE", 50.0), agg("PERCENTILE", 90.0), agg("PERCENTILE", 99.0)]
QUERIES = [  # (view, metric, aggregations, dimensions, filters, interval)
    (T, "trace_count", [agg("COUNT")], ["trace_status"], [], DAY),
    (T, "trace_count", [agg("COUNT")], [], [], None),
    (T, "trace_count", [agg("COUNT")], ["trace_name", "trace_status"], [], 3600),
    (T, "trace_count", [agg("COUNT")], [], ['trace.status = "ERROR"'], None),
    (T, "trace_count", [agg("COUNT")], [], ['trace.tag.k1 = "x"'], None),
    (T, "trace_count", [agg("COUNT")], [], ['trace.metadata.m1 = "p"'], None),
    (T, "session_count", [agg("COUNT")], [], [], None),
    (T, "latency", P, [], [], DAY),
    (T, "latency", [agg("AVG")], [], [], None),
    (T, "latency", [agg("MIN"), agg("MAX")], ["trace_name"], [], None),
    (T, "input_tokens", [agg("SUM")], [], [], DAY),
    (T, "output_tokens", [agg("SUM")], [], [], DAY),
    (T, "cache_read_input_tokens", [agg("SUM")], [], [], DAY),
    (T, "cache_creation_input_tokens", [agg("SUM")], [], [], DAY),
    (T, "total_tokens", [agg("SUM"), agg("AVG")], [], [], None),
    (T, "total_tokens", P, [], [], DAY),
    (S, "span_count", [agg("COUNT")], ["span_name", "span_status"], ['span.type = "TOOL"'], None),
    (S, "latency", [agg("AVG")], [], ['span.type = "TOOL"'], None),
    (S, "latency", [agg("AVG")], ["span_name"], ['span.type = "TOOL"'], None),
    (S, "span_count", [agg("COUNT")], ["span_name"], ['span.type = "TOOL"'], DAY),
    (S, "latency", [agg("AVG")], ["span_name"], ['span.type = "TOOL"'], DAY),
    (S, "span_count", [agg("COUNT")], ["span_type"], [], None),
    (S, "latency", P, ["span_status"], ['trace.status = "OK"'], None),
    (A, "assessment_value", [agg("AVG")], ["assessment_name"], [FEEDBACK], DAY),
    (A, "assessment_count", [agg("COUNT")], ["assessment_name", "assessment_value"], [FEEDBACK],
     None),
    (A, "assessment_count", [agg("COUNT")], ["assessment_name"], [], None),
    (A, "assessment_value", [agg("MIN"), agg("MAX")] + P, [], [], None),
]  # fmt: skip
WINDOWS = [(START, START + 7 * DAY * 1000), (START + 30_000, START + 90_000), (None, None)]


@pytest.fixture(scope="module")
def stores(tmp_path_factory, dynalite_endpoint):
    tmp = tmp_path_factory.mktemp("metrics-diff")
    host_port = dynalite_endpoint.removeprefix("http://")
    ours = DynamoTrackingStore(f"dynamodb://{host_port}/tm{uuid.uuid4().hex[:8]}", str(tmp))
    oracle = SqlAlchemyStore(f"sqlite:///{tmp}/oracle.db", str(tmp))
    experiments = (ours.create_experiment("m"), oracle.create_experiment("m"))
    _seed(ours, oracle, experiments, random.Random(SEED))
    yield ours, oracle, experiments
    oracle.engine.dispose()


def _seed(ours, oracle, experiments, rng):
    for n in range(30):
        trace_id = f"tr-{n:02d}{rng.getrandbits(64):016x}"
        request_time = START + rng.randint(0, 150) * 1000 + rng.choice([0, DAY * 1000])
        tags = {"k1": rng.choice(["x", "y"])}
        if rng.random() < 0.8:
            tags[TraceTagKey.TRACE_NAME] = rng.choice(["chat", "agent"])
        metadata = {"m1": rng.choice(["p", "q"])}
        if rng.random() < 0.5:
            metadata[TraceMetadataKey.TRACE_SESSION] = rng.choice(["s1", "s2", "s3"])
        if rng.random() < 0.8:
            usage = {"input_tokens": rng.randint(1, 90), "output_tokens": rng.randint(1, 50)}
            usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
            if rng.random() < 0.5:
                usage["cache_read_input_tokens"] = rng.randint(0, 9)
                usage["cache_creation_input_tokens"] = rng.randint(0, 9)
            metadata[TraceMetadataKey.TOKEN_USAGE] = json.dumps(usage)
        state = rng.choice([TraceState.OK, TraceState.OK, TraceState.ERROR])
        duration = rng.choice([None, 5, 50, 500, 1234])
        start_ns = request_time * 1_000_000
        spans = [span(trace_id, 1, name="root", span_type="AGENT", start_ns=start_ns)]
        for k in range(2, 2 + rng.randint(0, 3)):
            spans.append(
                span(
                    trace_id, k, parent=1, name=rng.choice(["search", "fetch", "llm"]),
                    span_type=rng.choice(["TOOL", "TOOL", "LLM"]),
                    status=rng.choice(["OK", "OK", "ERROR"]),
                    start_ns=start_ns + k * 1_000_000,
                    end_ns=start_ns + k * 1_000_000 + rng.randint(1, 900) * 1_000_000,
                )
            )  # fmt: skip
        feedback = rng.choice([None, True, False, 0.25, 0.75, 3])
        expectation = rng.choice([None, "yes"])
        for store, experiment_id in zip((ours, oracle), experiments, strict=True):
            store.log_spans(experiment_id, spans)
            info = trace_info(
                trace_id, experiment_id, request_time=request_time, duration=duration,
                state=state, tags=tags, metadata=metadata,
            )  # fmt: skip
            store.start_trace(info)
            if feedback is not None:
                store.create_assessment(
                    Feedback(name="quality", value=feedback, source=SOURCE, trace_id=trace_id)
                )
            if expectation is not None:
                store.create_assessment(
                    Expectation(
                        name="expected", value=expectation, source=SOURCE, trace_id=trace_id
                    )
                )


def _points(store, experiment_id, query, window):
    view, metric, aggregations, dimensions, filters, interval = query
    start, end = window
    if interval and start is None:
        interval = None
    try:
        found = store.query_trace_metrics(
            [experiment_id], view, metric, aggregations, dimensions, filters, interval, start, end
        )
    except MlflowException as exc:
        return ("error", exc.error_code, exc.message)
    return [
        (p.dimensions, {k: pytest.approx(float(v), rel=1e-12) for k, v in p.values.items()})
        for p in found
    ]


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q[0].value}-{q[1]}")
def test_metrics_match_sql_store(stores, query, window):
    ours, oracle, (ours_exp, oracle_exp) = stores
    theirs = _points(oracle, oracle_exp, query, window)
    assert _points(ours, ours_exp, query, window) == theirs
    if window == WINDOWS[0]:
        assert theirs  # the workload gives every query something to show


@pytest.mark.parametrize(
    ("view", "metric", "filters", "interval", "end"),
    [
        (T, "nope", [], None, None),
        (T, "trace_count", ['span.type = "TOOL"'], None, None),
        (S, "span_count", ['assessment.name = "q"'], None, None),
        (T, "trace_count", ["trace.status = 'OK' AND trace.status = 'ERROR'"], None, None),
        (T, "trace_count", [], 60, START),
    ],
)
def test_refusals_match_sql_store(stores, view, metric, filters, interval, end):
    ours, oracle, (ours_exp, oracle_exp) = stores
    answers = []
    for store, experiment_id in ((ours, ours_exp), (oracle, oracle_exp)):
        with pytest.raises(MlflowException) as caught:
            store.query_trace_metrics(
                [experiment_id], view, metric, [agg("COUNT")], [], filters, interval, None, end
            )
        answers.append((caught.value.error_code, caught.value.message))
    assert answers[0] == answers[1]


def test_a_query_reads_the_index_once_and_no_span(stores):
    ours, _, (experiment_id, _) = stores
    ours.table.round_trips.reset()
    end = START + 7 * DAY * 1000
    ours.query_trace_metrics([experiment_id], S, "latency", P, ["span_name"], [], DAY, START, end)
    assert ours.table.round_trips.by_operation() == {"Query": 1}
