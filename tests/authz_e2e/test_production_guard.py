"""Production belongs to a registered model's managers, over the running stack.

Mia manages a model whose version 1 serves in Production behind the alias `champion`; Erin
edits it (her group is an editor). Erin may work on the other versions, but may not take
version 1 out of Production (and then delete it), promote another version over it, or move
or delete the aliases that point at Production.
"""

from __future__ import annotations

import warnings

import pytest
from mlflow import MlflowClient
from mlflow_calls import denied

MIA = ("mia", ("models-team",))
ERIN = ("erin", ("prod-editors",))
MODEL = "guarded-churn"


def transition(client: MlflowClient, version: str, stage: str, archive: bool = False):
    with warnings.catch_warnings():  # stages are deprecated in MLflow, not removed
        warnings.simplefilter("ignore")
        return client.transition_model_version_stage(MODEL, version, stage, archive)


@pytest.fixture(scope="module")
def model(authz_stack):
    """MODEL with versions 1 (Production, @champion), 2 (Staging), 3 and 4 (None)."""
    with authz_stack.as_user(*MIA):
        client = MlflowClient()
        experiment_id = client.create_experiment("mia-guarded")
        run_id = client.create_run(experiment_id).info.run_id
        client.create_registered_model(MODEL)
        for _ in range(4):
            client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id)
        transition(client, "1", "Production")
        transition(client, "2", "Staging")
        client.set_registered_model_alias(MODEL, "champion", "1")
    with authz_stack.http(*MIA) as http:
        granted = http.post(
            "/api/3.0/cedarflow/permissions/grant",
            json={
                "resource_type": "registered_model",
                "resource_id": MODEL,
                "group": "prod-editors",
                "role": "editor",
            },
        )
        assert granted.status_code == 200, granted.text
    return MODEL


def test_an_editor_cannot_take_a_version_out_of_production(authz_stack, model):
    with authz_stack.as_user(*ERIN):
        client = MlflowClient()
        assert denied(lambda: transition(client, "1", "Archived"))
        assert denied(lambda: transition(client, "1", "None"))
        assert denied(lambda: client.delete_model_version(model, "1"))
        assert denied(lambda: transition(client, "3", "production"))  # spelled any way
        assert denied(lambda: transition(client, "3", "Production", archive=True))
        assert denied(lambda: client.delete_registered_model_alias(model, "champion"))
        assert denied(lambda: client.set_registered_model_alias(model, "champion", "3"))
        assert denied(lambda: client.set_registered_model_alias(model, "candidate", "1"))
        # what is not Production stays the editor's
        assert transition(client, "3", "Staging").current_stage == "Staging"
        client.set_registered_model_alias(model, "candidate", "3")
        client.delete_registered_model_alias(model, "candidate")
        client.update_model_version(model, "1", description="serves since Monday")
        client.delete_model_version(model, "4")
    with authz_stack.as_user(*MIA):
        client = MlflowClient()
        assert client.get_model_version(model, "1").current_stage == "Production"
        assert client.get_model_version(model, "2").current_stage == "Staging"
        assert client.get_model_version_by_alias(model, "champion").version == "1"


def test_the_guard_reads_the_stage_fresh(authz_stack, model):
    """A version promoted a moment ago is guarded, whatever the gateway cached before."""
    resolver = authz_stack.pipeline.facts
    saved, resolver.ttl = resolver.ttl, 600.0
    try:
        with authz_stack.as_user(*ERIN):
            assert MlflowClient().get_model_version(model, "2").current_stage == "Staging"
        with authz_stack.as_user(*MIA):
            transition(MlflowClient(), "2", "Production")
        with authz_stack.as_user(*ERIN):
            client = MlflowClient()
            assert denied(lambda: client.delete_model_version(model, "2"))
            assert denied(lambda: transition(client, "2", "Archived"))
    finally:
        resolver.ttl = saved
    with authz_stack.as_user(*MIA):
        client = MlflowClient()
        assert client.get_model_version(model, "2").current_stage == "Production"
        # the manager changes Production: archive the others while promoting
        transition(client, "3", "Production", archive=True)
        stages = {v: client.get_model_version(model, v).current_stage for v in ("1", "2", "3")}
        assert stages == {"1": "Archived", "2": "Archived", "3": "Production"}
