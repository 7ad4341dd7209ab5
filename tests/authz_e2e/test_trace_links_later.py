"""A trace linked to a run before it is logged (asynchronous logging), through the gateway with
MLflow's client: the link is kept and counts once the trace appears in the run's experiment; a
link made to another experiment's future trace never attaches it."""

from __future__ import annotations

import uuid

from mlflow import MlflowClient
from traces_support import start_trace

ALICE = ("alice-lk", ("lk-vision",))
BOB = ("bob-lk", ("lk-nlp",))


def _run_traces(experiment_id: str, run_id: str) -> list[str]:
    # trace infos only: these traces have no spans to download
    traces = MlflowClient().search_traces(
        locations=[experiment_id], filter_string=f"run_id = '{run_id}'", include_spans=False
    )
    return [t.info.trace_id for t in traces]


def test_a_link_made_before_the_trace_is_kept_and_never_crosses_experiments(authz_stack):
    later, elsewhere = (f"tr-{uuid.uuid4().hex}" for _ in range(2))
    with authz_stack.as_user(*ALICE):
        client = MlflowClient()
        alice_exp = client.create_experiment("lk-alice")
        alice_run = client.create_run(alice_exp).info.run_id
        client.link_traces_to_run([later], alice_run)
    with authz_stack.as_user(*BOB):
        client = MlflowClient()
        bob_exp = client.create_experiment("lk-bob")
        bob_run = client.create_run(bob_exp).info.run_id
        client.link_traces_to_run([elsewhere], bob_run)  # a trace id not logged yet: allowed
    with authz_stack.http(*ALICE) as alice:
        for trace_id in (later, elsewhere):
            assert start_trace(alice, trace_id, alice_exp).status_code == 200
    with authz_stack.as_user(*ALICE):
        assert _run_traces(alice_exp, alice_run) == [later]
        assert _run_traces(alice_exp, bob_run) == []
    with authz_stack.as_user(*BOB):
        assert _run_traces(bob_exp, bob_run) == []
        # an existing trace of another experiment is refused as before
        refused = MlflowClient()
        try:
            refused.link_traces_to_run([later], bob_run)
        except Exception as exc:  # noqa: BLE001 - the client reports the 403 its own way
            assert "PERMISSION_DENIED" in str(exc)
        else:
            raise AssertionError("linking another experiment's trace was allowed")
