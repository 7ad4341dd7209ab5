"""Trace search on DynamoDB (dynalite) gives what MLflow's SqlAlchemyStore (sqlite) gives.

A seeded random workload (trace infos, spans, tags, metadata, assessments, run links) goes into
both stores through the same public calls; every filter × order × page size is then compared
page by page, TraceInfo by TraceInfo. Values are lower-case so sqlite's case-insensitive LIKE
agrees with MLflow's LIKE.
"""

from __future__ import annotations

import random
import uuid

import pytest
from mlflow.entities.assessment import AssessmentSource, Expectation, Feedback
from mlflow.entities.trace_state import TraceState
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracing.constant import TraceMetadataKey, TraceTagKey
from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION
from test_traces_support import span, trace_info

from store.tracking import DynamoTrackingStore

SEED = 11_30
N_TRACES = 36
RUNS = ("run-a", "run-b")
SOURCE = AssessmentSource(source_type="HUMAN", source_id="alice")


@pytest.fixture(scope="module")
def stores(tmp_path_factory, dynalite_endpoint):
    tmp = tmp_path_factory.mktemp("traces-diff")
    host_port = dynalite_endpoint.removeprefix("http://")
    ours = DynamoTrackingStore(f"dynamodb://{host_port}/trd{uuid.uuid4().hex[:8]}", str(tmp))
    oracle = SqlAlchemyStore(f"sqlite:///{tmp}/oracle.db", str(tmp))
    experiments = [(ours.create_experiment(n), oracle.create_experiment(n)) for n in ("a", "b")]
    run = (
        ours.create_run(experiments[0][0], "u", 0, [], "r").info.run_id,
        oracle.create_run(experiments[0][1], "u", 0, [], "r").info.run_id,
    )
    _seed(ours, oracle, experiments, run, random.Random(SEED))
    yield ours, oracle, experiments
    oracle.engine.dispose()


def _seed(ours, oracle, experiments, run, rng):
    linked = []
    for n in range(N_TRACES):
        trace_id = f"tr-{n:02d}{rng.getrandbits(64):016x}"
        exp = rng.choice([0, 0, 1])
        tags = {k: rng.choice(["x", "y", "xy"]) for k in ("k1", "k2") if rng.random() < 0.6}
        if rng.random() < 0.7:
            tags[TraceTagKey.TRACE_NAME] = rng.choice(["predict", "chat", "agent"])
        metadata = {k: rng.choice(["p", "q"]) for k in ("m1", "m2") if rng.random() < 0.5}
        if rng.random() < 0.5:
            metadata[TraceMetadataKey.SOURCE_RUN] = rng.choice(RUNS)
        if rng.random() < 0.3:
            metadata[TraceMetadataKey.TRACE_SESSION] = rng.choice(["s1", "s2"])
        request_time = 1_700_000_000_000 + rng.randint(0, 20) * 1000
        state = rng.choice([TraceState.OK, TraceState.OK, TraceState.ERROR])
        duration = rng.choice([None, 5, 50, 500])
        spans = _spans(trace_id, rng, request_time) if rng.random() < 0.8 else []
        client_request_id = rng.choice([None, "c-1", "c-2"])
        feedback = rng.choice([None, True, False, 0.25, 0.75, 3, "good"])
        expectation = rng.choice([None, "yes", "no"])
        link = rng.random() < 0.2
        for index, store in enumerate((ours, oracle)):
            experiment_id = experiments[exp][index]
            if spans:
                store.log_spans(experiment_id, spans)
            store.start_trace(
                trace_info(
                    trace_id,
                    experiment_id,
                    request_time=request_time,
                    duration=duration,
                    state=state,
                    tags=tags,
                    metadata=metadata,
                    client_request_id=client_request_id,
                )
            )
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
            if exp == 0 and link:
                store.link_traces_to_run([trace_id], run[index])
        if exp == 0 and link:
            linked.append(trace_id)
    return linked


def _spans(trace_id, rng, request_time):
    start = request_time * 1_000_000
    spans = [
        span(
            trace_id,
            1,
            name=rng.choice(["root", "main"]),
            span_type=rng.choice(["CHAIN", "AGENT"]),
            status=rng.choice(["OK", "ERROR"]),
            start_ns=start,
            end_ns=start + 5_000_000,
            attributes={"mlflow.spanInputs": {"q": rng.choice(["hello", "bye"])}},
        )
    ]
    for n in range(2, 2 + rng.randint(0, 2)):
        spans.append(
            span(
                trace_id,
                n,
                parent=1,
                name=rng.choice(["llm", "retrieve", "tool"]),
                span_type=rng.choice(["LLM", "RETRIEVER", "TOOL"]),
                status=rng.choice(["OK", "OK", "ERROR"]),
                start_ns=start + n,
                end_ns=start + 1_000_000,
                attributes={"model": rng.choice(["gpt", "claude"])},
            )
        )
    return spans


FILTERS = [
    None,
    "timestamp_ms > 1700000010000",
    "timestamp <= 1700000005000",
    "execution_time_ms > 10",
    "end_time_ms < 1700000012000",
    "status = 'OK'",
    "trace.status != 'ERROR'",
    "status IN ('ERROR')",
    "client_request_id = 'c-1'",
    "name = 'predict'",
    "name LIKE 'pr%'",
    "name != 'chat'",
    "tags.k1 = 'x'",
    "tags.k1 != 'x'",
    "tags.k2 LIKE '%y'",
    "tags.k1 IS NULL",
    "tags.k2 IS NOT NULL",
    "tags.`mlflow.traceName` = 'agent'",
    "metadata.m1 = 'p'",
    "metadata.m2 ILIKE 'Q'",
    "metadata.m1 IS NULL",
    "request_metadata.m2 IS NOT NULL",
    "run_id = 'run-a'",
    "metadata.`mlflow.trace.session` = 's1'",
    "metadata.`mlflow.trace.session` IS NOT NULL",
    "span.name = 'llm'",
    "span.type = 'TOOL'",
    "span.status = 'ERROR'",
    "span.name = 'retrieve' AND span.type = 'RETRIEVER'",
    "span.name LIKE 'r%'",
    "span.content LIKE '%hello%'",
    "span.attributes.model LIKE '%claude%'",
    "span.status = 'OK' AND span.content LIKE '%gpt%'",
    "span.type = 'LLM' AND span.status = 'OK' AND span.content LIKE '%gpt%'",
    "span.name = 'llm' AND span.status = 'ERROR' AND span.attributes.model LIKE '%gpt%'",
    "feedback.quality = 'true'",
    "feedback.quality = 'good'",
    "feedback.quality > 0.5",
    "feedback.quality <= 0.25",
    "feedback.quality IS NULL",
    "expectation.expected = 'yes'",
    "expectation.expected IS NOT NULL",
    "tags.k1 = 'x' AND status = 'OK' AND timestamp_ms > 1700000002000",
]
ORDERS = [
    None,
    ["timestamp_ms ASC"],
    ["execution_time DESC"],
    ["status", "timestamp_ms DESC"],
    ["name"],
    ["name DESC", "request_id"],
    ["tags.k1 DESC"],
    ["metadata.m1"],
    ["experiment_id DESC", "timestamp_ms"],
    ["execution_time_ms", "name DESC"],
]


def _pages(store, locations, filter_string, order_by, size):
    pages, token = [], None
    for _ in range(N_TRACES + 2):
        infos, token = store.search_traces(
            locations=locations,
            filter_string=filter_string,
            order_by=order_by,
            max_results=size,
            page_token=token,
        )
        pages.append([_comparable(i) for i in infos])
        if not token:
            return [p for p in pages if p]
    raise AssertionError("pagination did not end")


def _comparable(info) -> dict:
    data = info.to_dict()
    data["tags"].pop(MLFLOW_ARTIFACT_LOCATION, None)
    data["assessments"] = sorted(
        (a.name, str(a.value), a.valid, a.source.source_id) for a in info.assessments
    )
    data.pop("trace_location")
    return data


def _locations(experiments):
    return [e[0] for e in experiments], [e[1] for e in experiments]


@pytest.mark.parametrize("filter_string", FILTERS)
def test_filters_match_sql_store(stores, filter_string):
    ours, oracle, experiments = stores
    our_ids, oracle_ids = _locations(experiments)
    for size in (5, 100):
        expected = _pages(oracle, oracle_ids, filter_string, None, size)
        assert _pages(ours, our_ids, filter_string, None, size) == expected, (filter_string, size)


@pytest.mark.parametrize("order_by", ORDERS)
def test_orders_match_sql_store(stores, order_by):
    ours, oracle, experiments = stores
    our_ids, oracle_ids = _locations(experiments)
    for filter_string, size in [(None, 7), ("status = 'OK'", 100)]:
        expected = _pages(oracle, oracle_ids, filter_string, order_by, size)
        got = _pages(ours, our_ids, filter_string, order_by, size)
        assert got == expected, (order_by, filter_string, size)


def test_one_experiment_and_batch_get_match(stores):
    ours, oracle, experiments = stores
    our_id, oracle_id = experiments[1]
    assert _pages(ours, [our_id], None, None, 4) == _pages(oracle, [oracle_id], None, None, 4)
    ids = [
        i.trace_id
        for i in oracle.search_traces(locations=[oracle_id])[0]
        if i.tags.get(TraceTagKey.SPANS_LOCATION) == "TRACKING_STORE"
    ]
    assert ids
    expected = {
        t.info.trace_id: [s.to_dict() for s in t.data.spans] for t in oracle.batch_get_traces(ids)
    }
    got = {t.info.trace_id: [s.to_dict() for s in t.data.spans] for t in ours.batch_get_traces(ids)}
    assert got == expected
