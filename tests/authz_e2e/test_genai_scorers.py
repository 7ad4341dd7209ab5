"""Scorers through the gateway with MLflow's own client: registered, listed, versioned and
deleted in an experiment, and decided on that experiment (readers list and get, editors
register, managers delete, outsiders nothing)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from mlflow.genai.judges import make_judge
from mlflow.genai.scorers import Guidelines
from mlflow.genai.scorers.registry import (
    delete_scorer,
    get_scorer,
    list_scorer_versions,
    list_scorers,
)
from mlflow_calls import denied

ALICE = ("alice-sc", ("sc-vision",))  # manager of her experiment
CAROL = ("carol-sc", ("sc-vision",))  # editor (the creator's group)
BOB = ("bob-sc", ("sc-nlp",))
MODEL = "openai:/gpt-4o-mini"  # never called: registering stores the judge only


@pytest.fixture(scope="module")
def experiment(authz_stack):
    with authz_stack.as_user(*ALICE):
        return MlflowClient().create_experiment("sc-alice")


def polite(version: int) -> Guidelines:
    return Guidelines(name="polite", guidelines=[f"Be polite (v{version})."], model=MODEL)


def test_scorers_are_registered_in_versions_listed_and_deleted(authz_stack, experiment):
    with authz_stack.as_user(*CAROL):
        polite(1).register(experiment_id=experiment)
        polite(2).register(experiment_id=experiment)
        judge = make_judge(name="concise", instructions="Is {{ outputs }} concise?", model=MODEL)
        judge.register(experiment_id=experiment)
        assert sorted(s.name for s in list_scorers(experiment_id=experiment)) == [
            "concise",
            "polite",
        ]
        versions = list_scorer_versions(name="polite", experiment_id=experiment)
        assert [v for _, v in versions] == [1, 2]
        assert get_scorer(name="polite", experiment_id=experiment).guidelines == ["Be polite (v2)."]
        first = get_scorer(name="polite", experiment_id=experiment, version=1)
        assert first.guidelines == ["Be polite (v1)."]
        assert denied(
            lambda: delete_scorer(name="concise", experiment_id=experiment, version="all")
        )
    with authz_stack.as_user(*ALICE):
        delete_scorer(name="polite", experiment_id=experiment, version=2)
        assert get_scorer(name="polite", experiment_id=experiment).guidelines == ["Be polite (v1)."]
        delete_scorer(name="concise", experiment_id=experiment, version="all")
        assert [s.name for s in list_scorers(experiment_id=experiment)] == ["polite"]


def test_an_outsider_neither_sees_nor_registers_scorers(authz_stack, experiment):
    with authz_stack.as_user(*BOB):
        assert denied(lambda: list_scorers(experiment_id=experiment))
        assert denied(lambda: get_scorer(name="polite", experiment_id=experiment))
        assert denied(lambda: polite(3).register(experiment_id=experiment))
    with authz_stack.http(*BOB) as http:
        answer = http.get("/ajax-api/3.0/mlflow/scorers/list", params={"experiment_id": experiment})
        assert answer.status_code == 403
