"""Token usage, cost and model of traces that arrive only as spans (OTLP, `log_spans`) on
DynamoDB (dynalite) give what MLflow's SqlAlchemyStore (sqlite) gives: the trace's totals
(rollups counted once, batches combined) and the span view's cost and model dimensions."""

from __future__ import annotations

import uuid

import pytest
from mlflow.entities.trace_metrics import AggregationType, MetricAggregation, MetricViewType
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracing.constant import SpanAttributeKey, TraceMetadataKey
from test_traces_support import new_trace_id, span

from store.tracking import DynamoTrackingStore

START_NS = 1_700_000_000_000_000_000
S = MetricViewType.SPANS


def _llm(trace_id, number, parent, model, provider, tokens, cost):
    attributes = {
        SpanAttributeKey.MODEL: model,
        SpanAttributeKey.MODEL_PROVIDER: provider,
        SpanAttributeKey.CHAT_USAGE: {
            "input_tokens": tokens,
            "output_tokens": tokens // 2,
            "total_tokens": tokens + tokens // 2,
        },
        SpanAttributeKey.LLM_COST: {
            "input_cost": cost,
            "output_cost": cost / 4,
            "total_cost": cost * 1.25,
        },
    }
    return span(
        trace_id,
        number,
        parent=parent,
        name="llm",
        span_type="LLM",
        start_ns=START_NS + number,
        attributes=attributes,
    )


@pytest.fixture(scope="module")
def stores(tmp_path_factory, dynalite_endpoint):
    tmp = tmp_path_factory.mktemp("span-usage")
    host_port = dynalite_endpoint.removeprefix("http://")
    ours = DynamoTrackingStore(f"dynamodb://{host_port}/su{uuid.uuid4().hex[:8]}", str(tmp))
    oracle = SqlAlchemyStore(f"sqlite:///{tmp}/oracle.db", str(tmp))
    one_batch, two_batches = new_trace_id(), new_trace_id()
    experiments = []
    for store in (ours, oracle):
        experiment_id = store.create_experiment("usage")
        experiments.append(experiment_id)
        root = span(one_batch, 1, name="agent", span_type="AGENT", start_ns=START_NS)
        store.log_spans(
            experiment_id,
            [
                root,
                _llm(one_batch, 2, 1, "gpt-4o", "openai", 100, 0.5),
                _llm(one_batch, 3, 1, "claude-3", "anthropic", 40, 0.25),
            ],
        )
        store.log_spans(experiment_id, [_llm(two_batches, 2, 1, "gpt-4o", "openai", 10, 0.125)])
        store.log_spans(
            experiment_id,
            [
                span(two_batches, 1, name="agent", span_type="AGENT", start_ns=START_NS),
                _llm(two_batches, 3, 1, "gpt-4o", "openai", 20, 0.25),
            ],
        )
    yield ours, oracle, experiments, (one_batch, two_batches)
    oracle.engine.dispose()


def test_trace_totals_come_from_the_spans(stores):
    ours, oracle, _, trace_ids = stores
    keys = (TraceMetadataKey.TOKEN_USAGE, TraceMetadataKey.COST)
    for trace_id in trace_ids:
        theirs = oracle.get_trace_info(trace_id)
        got = ours.get_trace_info(trace_id)
        assert theirs.token_usage is not None
        assert got.token_usage == theirs.token_usage
        assert {k: got.trace_metadata.get(k) for k in keys} == {
            k: theirs.trace_metadata.get(k) for k in keys
        }


QUERIES = [
    ("total_cost", [AggregationType.SUM], ["span_model_name"]),
    ("input_cost", [AggregationType.SUM, AggregationType.AVG], ["span_model_provider"]),
    ("output_cost", [AggregationType.MAX], []),
    ("span_count", [AggregationType.COUNT], ["span_model_name", "span_model_provider"]),
]


@pytest.mark.parametrize(("metric", "kinds", "dimensions"), QUERIES)
def test_span_costs_and_models_match_sql_store(stores, metric, kinds, dimensions):
    ours, oracle, (ours_exp, oracle_exp), _ = stores
    aggregations = [MetricAggregation(k) for k in kinds]
    answers = []
    for store, experiment_id in ((ours, ours_exp), (oracle, oracle_exp)):
        points = store.query_trace_metrics([experiment_id], S, metric, aggregations, dimensions)
        answers.append(
            sorted(
                (sorted(p.dimensions.items()), {k: pytest.approx(v) for k, v in p.values.items()})
                for p in points
            )
        )
    assert answers[0] == answers[1]
    assert answers[1]
