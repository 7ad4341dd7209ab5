"""GenAI evaluation end to end through the gateway with MLflow's own client: traces logged, a
dataset built from them, a code scorer registered and listed, `mlflow.genai.evaluate` run on
the dataset (no LLM: nothing leaves the machine), the evaluation run and its assessments read
back by a reader; an outsider is refused."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.genai.datasets import create_dataset, get_dataset
from mlflow.genai.scorers import Guidelines, scorer
from mlflow.genai.scorers.registry import list_scorers
from mlflow.server import get_app_client
from mlflow_calls import denied

ALICE = ("alice-ev", ("ev-vision",))
RITA = ("rita-ev", ("ev-readers",))
BOB = ("bob-ev", ("ev-nlp",))
QUESTIONS = ("alpha", "beta", "gamma")
# registered and listed, never called (the evaluation uses the code scorer: the server refuses
# to register code scorers, as MLflow's own server does by default)
POLITE = Guidelines(name="polite", guidelines=["Be polite."], model="openai:/gpt-4o-mini")


@scorer
def shouts(outputs) -> bool:
    return isinstance(outputs, str) and outputs.isupper()


def answer(question: str) -> str:
    return question.upper()


@pytest.fixture(scope="module")
def world(authz_stack):
    for user in (RITA, BOB):
        with authz_stack.as_user(*user):
            MlflowClient().search_experiments()  # signed in once: the gateway knows them
    with authz_stack.as_user(*ALICE):
        experiment_id = MlflowClient().create_experiment("ev-alice")
        mlflow.set_experiment(experiment_id=experiment_id)
        traced = mlflow.trace(name="answer")(answer)
        for question in QUESTIONS:
            traced(question)
        mlflow.flush_trace_async_logging()
        traces = mlflow.search_traces(locations=[experiment_id], return_type="list")
        assert len(traces) == len(QUESTIONS)
        dataset = create_dataset(name="from-traces", experiment_id=experiment_id)
        dataset.merge_records(traces)
        POLITE.register(experiment_id=experiment_id)
        registered = [s.name for s in list_scorers(experiment_id=experiment_id)]
        result = mlflow.genai.evaluate(data=dataset, predict_fn=answer, scorers=[shouts])
        get_app_client("basic-auth", authz_stack.url).grant_user_permission(
            RITA[0], "experiment", experiment_id, "READ"
        )
    return {
        "experiment_id": experiment_id,
        "dataset_id": dataset.dataset_id,
        "run_id": result.run_id,
        "metrics": result.metrics,
        "registered": registered,
    }


def test_the_evaluation_runs_on_a_dataset_built_from_traces(world):
    assert world["registered"] == ["polite"]
    assert world["metrics"]["shouts/mean"] == 1.0


def test_a_reader_reads_the_evaluation_run_and_its_assessments(authz_stack, world):
    with authz_stack.as_user(*RITA):
        run = MlflowClient().get_run(world["run_id"])
        assert run.info.experiment_id == world["experiment_id"]
        assert run.data.metrics["shouts/mean"] == 1.0
        traces = mlflow.search_traces(
            locations=[world["experiment_id"]], run_id=world["run_id"], return_type="list"
        )
        assert len(traces) == len(QUESTIONS)
        for trace in traces:
            values = [a.value for a in trace.info.assessments if a.name == "shouts"]
            assert values == [True]
        assert [s.name for s in list_scorers(experiment_id=world["experiment_id"])] == ["polite"]


def test_an_outsider_is_refused(authz_stack, world):
    with authz_stack.as_user(*BOB):
        assert denied(lambda: MlflowClient().get_run(world["run_id"]))
        assert denied(lambda: list_scorers(experiment_id=world["experiment_id"]))
        assert denied(lambda: get_dataset(dataset_id=world["dataset_id"]))
        # a search is narrowed to what the caller may read: nothing here
        found = mlflow.search_traces(locations=[world["experiment_id"]], return_type="list")
        assert found == []
