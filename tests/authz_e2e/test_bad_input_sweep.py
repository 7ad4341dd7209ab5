"""Malformed input at every route of the route table: a 4xx MLflow-style JSON error, never a 5xx.

The requests are generated from the route table and MLflow's request messages (bad_inputs.py):
each route once (its `/ajax-api` twin has the same handler), aimed at real resources of the
caller so that the gateway forwards what it does not refuse itself. A hypothesis test adds
arbitrary JSON values for arbitrary parameters of arbitrary routes.

A 501 NOT_IMPLEMENTED is accepted: it is how the stores answer the MLflow calls they do not
offer (scorers, evaluation datasets, v2 traces), as MLflow's own stores do.
"""

from __future__ import annotations

import json
import time

import httpx
import mlflow
import pytest
from bad_inputs import (
    KnownIds,
    Probe,
    base_params,
    body_probes,
    offered_routes,
    parameter_names,
    parameter_probes,
    path_probes,
    probe,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient

OWNER = ("sweeper", ("sweepers",))
ADMIN = ("sweep-admin", ("admins",))
# A probe breaks one parameter; the others name real resources, so a delete or a rename may
# really happen: those calls run last, and the random examples leave them out.
_DESTRUCTIVE = ("Delete", "Remove", "Rename", "Restore")
ROUTES = sorted(offered_routes(), key=lambda r: (r.action or "").startswith(_DESTRUCTIVE))
LASTING_ROUTES = [r for r in ROUTES if not (r.action or "").startswith(_DESTRUCTIVE)]


@pytest.fixture
def ids(authz_stack) -> KnownIds:
    """Fresh resources for each test: the previous test's probes may have deleted its own."""
    with authz_stack.as_user(*OWNER):
        client = MlflowClient()
        experiment_id = client.create_experiment(f"sweep-{time.time_ns()}")
        run_id = client.create_run(experiment_id).info.run_id
        client.log_metric(run_id, "m", 1.0)
        client.log_param(run_id, "p", "v")
        client.set_tag(run_id, "t", "v")
        name = f"sweep-model-{time.time_ns()}"
        client.create_registered_model(name)
        version = client.create_model_version(name, f"runs:/{run_id}/model", run_id).version
        logged_model_id = client.create_logged_model(experiment_id).model_id
        trace_id = client.start_trace("sweep", experiment_id=experiment_id).trace_id
        client.end_trace(trace_id)
        mlflow.flush_trace_async_logging()
    return KnownIds(experiment_id, run_id, name, str(version), logged_model_id, trace_id)


@pytest.fixture(scope="module")
def owner(authz_stack):
    with authz_stack.http(*OWNER) as http:
        yield http


def test_every_route_answers_malformed_parameters_with_a_4xx(owner, ids):
    failures = _sweep(owner, [p for r in ROUTES for p in parameter_probes(r, ids)])
    assert not failures, _report(failures)


def test_every_route_answers_malformed_bodies_queries_and_paths_with_a_4xx(owner, ids):
    probes = [p for r in ROUTES for p in (*body_probes(r, ids), *path_probes(r, ids))]
    failures = _sweep(owner, probes)
    assert not failures, _report(failures)


def test_administrators_graphql_answers_malformed_input_with_a_4xx(authz_stack, ids):
    """Administrators' GraphQL is not decided per field: MLflow would see what they send."""
    graphql = [r for r in ROUTES if r.filter == "graphql"]
    probes = [
        p
        for r in graphql
        for p in (*parameter_probes(r, ids), *body_probes(r, ids), *path_probes(r, ids))
    ]
    with authz_stack.http(*ADMIN) as admin:
        failures = _sweep(admin, probes)
    assert not failures, _report(failures)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@settings(
    max_examples=300,
    derandomize=True,  # the same examples on every run: a failure is reproducible
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_arbitrary_values_for_arbitrary_parameters_get_no_5xx(owner, ids, data):
    route = data.draw(st.sampled_from(LASTING_ROUTES), label="route")
    name = data.draw(st.sampled_from(parameter_names(route)), label="parameter")
    value = data.draw(_JSON, label="value")
    sent = probe(route, ids, base_params(route, ids) | {name: value}, f"{name}={value!r}"[:80])
    failure = _check(owner, sent)
    assert failure is None, failure


# ---- support --------------------------------------------------------------------------------


def _sweep(http: httpx.Client, probes: list[Probe]) -> list[str]:
    failures = []
    for sent in probes:
        failure = _check(http, sent)
        if failure is not None:
            failures.append(failure)
    return failures


def _check(http: httpx.Client, sent: Probe) -> str | None:
    """None if the answer is fine: below 500 (or NOT_IMPLEMENTED), errors in MLflow's JSON."""
    headers = {"Content-Type": sent.content_type} if sent.content_type else {}
    try:
        response = http.request(
            sent.method, sent.target, content=sent.body or None, headers=headers
        )
    except httpx.HTTPError as exc:
        return f"{sent.describe()} -> {type(exc).__name__}: {exc}"
    status = response.status_code
    if status < 400:
        return None
    try:
        error = response.json()
    except ValueError:
        error = None
    if not isinstance(error, dict) or not isinstance(error.get("error_code"), str):
        return f"{sent.describe()} -> {status} without an MLflow JSON error: {response.text[:120]}"
    if status >= 500 and not (status == 501 and error["error_code"] == "NOT_IMPLEMENTED"):
        return f"{sent.describe()} -> {status} {json.dumps(error)[:160]}"
    return None


def _report(failures: list[str]) -> str:
    return f"{len(failures)} bad answers:\n" + "\n".join(failures[:40])
