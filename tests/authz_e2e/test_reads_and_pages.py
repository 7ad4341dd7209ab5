"""Warm caches cost no DynamoDB read; filtered search pages are refilled to max_results."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

DANA = ("dana", ("speech",))
ERIN = ("erin", ("robots",))


@pytest.fixture
def long_ttl(authz_stack):
    """Bindings stay fresh for the whole test (the default TTL is a few seconds)."""
    resolver = authz_stack.pipeline.facts
    saved, resolver.ttl = resolver.ttl, 600.0
    yield resolver
    resolver.ttl = saved


def test_training_loop_log_metric_reads_dynamodb_only_once(authz_stack, long_ttl):
    with authz_stack.as_user(*DANA):
        client = MlflowClient()
        experiment_id = client.create_experiment("dana-loop")
        run_id = client.create_run(experiment_id).info.run_id
        client.log_metric(run_id, "loss", 1.0, step=0)  # the first call resolves the run
        before = long_ttl.reads
        for step in range(1, 21):
            client.log_metric(run_id, "loss", 1.0 / step, step=step)
        client.get_run(run_id)
        assert long_ttl.reads == before


def test_search_pages_are_refilled_to_max_results(authz_stack):
    with authz_stack.as_user(*ERIN):
        client = MlflowClient()
        mine = [client.create_experiment(f"erin-{i}") for i in range(3)]
    with authz_stack.as_user(*DANA):
        for i in range(4):  # interleaved experiments Erin may not see
            MlflowClient().create_experiment(f"dana-hidden-{i}")
    with authz_stack.as_user(*ERIN):
        client = MlflowClient()
        client.create_experiment("erin-3")
        mine.append(client.get_experiment_by_name("erin-3").experiment_id)
        seen, token, pages = [], None, 0
        while pages < 10:
            page = client.search_experiments(max_results=2, page_token=token)
            pages += 1
            seen += [e.experiment_id for e in page]
            token = page.token
            if not token:
                break
            assert len(page) == 2
        assert set(mine) <= set(seen)
        assert all(e.startswith("erin") or e == "Default" for e in _names(client, seen))


def _names(client: MlflowClient, ids: list[str]) -> list[str]:
    return [client.get_experiment(i).name for i in ids]
