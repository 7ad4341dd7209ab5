"""Run links of traces on DynamoDB (dynalite) give what MLflow's SqlAlchemyStore (sqlite) gives,
including links made before the trace exists (asynchronous trace logging); a link to a trace
that later appears in another experiment than the run's never counts."""

from __future__ import annotations

import uuid

import pytest
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from test_traces_support import new_trace_id, span, trace_info

from store.tracking import DynamoTrackingStore


@pytest.fixture(scope="module")
def stores(tmp_path_factory, dynalite_endpoint):
    tmp = tmp_path_factory.mktemp("links-diff")
    host_port = dynalite_endpoint.removeprefix("http://")
    ours = DynamoTrackingStore(f"dynamodb://{host_port}/tl{uuid.uuid4().hex[:8]}", str(tmp))
    oracle = SqlAlchemyStore(f"sqlite:///{tmp}/oracle.db", str(tmp))
    yield ours, oracle
    oracle.engine.dispose()


def _setup(store):
    home = store.create_experiment(f"home-{uuid.uuid4().hex[:6]}")
    other = store.create_experiment(f"other-{uuid.uuid4().hex[:6]}")
    run_id = store.create_run(home, "u", 0, [], "r").info.run_id
    return home, other, run_id


def _linked(store, experiment_id, run_id):
    infos, _ = store.search_traces(locations=[experiment_id], filter_string=f"run_id = '{run_id}'")
    return sorted(i.trace_id for i in infos)


def test_a_link_made_before_the_trace_exists_is_kept(stores):
    existing, by_spans, by_info, never = (new_trace_id() for _ in range(4))
    answers = []
    for store in stores:
        home, _, run_id = _setup(store)
        store.start_trace(trace_info(existing, home))
        store.link_traces_to_run([existing, by_spans, by_info, never], run_id)
        store.log_spans(home, [span(by_spans, 1)])
        store.start_trace(trace_info(by_info, home))
        answers.append(_linked(store, home, run_id))
    assert answers[0] == answers[1] == sorted([existing, by_spans, by_info])


def test_unlinking_drops_a_pending_link(stores):
    ours, _ = stores
    home, _, run_id = _setup(ours)
    later = new_trace_id()
    ours.link_traces_to_run([later], run_id)
    ours.unlink_traces_from_run([later], run_id)
    ours.start_trace(trace_info(later, home))
    assert _linked(ours, home, run_id) == []


def test_a_pending_link_never_attaches_a_trace_of_another_experiment(stores):
    ours, _ = stores
    home, other, run_id = _setup(ours)
    elsewhere = new_trace_id()
    ours.link_traces_to_run([elsewhere], run_id)
    ours.start_trace(trace_info(elsewhere, other))
    assert [i.trace_id for i in ours.search_traces(locations=[other])[0]] == [elsewhere]
    assert _linked(ours, other, run_id) == []
    assert _linked(ours, home, run_id) == []
