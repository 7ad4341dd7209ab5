"""An experiment worth looking at, logged through the gateway with MLflow's own client as its
owner: runs with params, metrics, artifacts and a logged model, agent traces with LLM spans
carrying token usage and cost, assessments, a session, a dataset built from the traces, a
registered judge, an evaluation run, a registered model with a version and an alias (and one
no role is granted), a prompt."""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.entities import AssessmentSource
from mlflow.genai.datasets import create_dataset
from mlflow.genai.scorers import Guidelines, scorer
from mlflow.tracing.constant import SpanAttributeKey

QUESTIONS = ("What is Cedar?", "Where do runs live?", "Who may read a trace?")
SESSION = "crawl-session-1"


@dataclass(frozen=True)
class CrawlWorld:
    experiment_id: str
    run_id: str
    trace_id: str
    dataset_id: str
    model_name: str
    model_version: str
    prompt_name: str


class EchoModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


@mlflow.trace(name="agent", span_type="AGENT")
def agent(question: str) -> str:
    mlflow.update_current_trace(session_id=SESSION, user="olivia")
    with mlflow.start_span(name="lookup", span_type="TOOL") as tool:
        tool.set_inputs({"query": question})
        tool.set_outputs({"hits": 2})
    with mlflow.start_span(name="chat", span_type="CHAT_MODEL") as llm:
        llm.set_inputs({"messages": [{"role": "user", "content": question}]})
        llm.set_attributes(
            {
                SpanAttributeKey.CHAT_USAGE: {
                    "input_tokens": 40,
                    "output_tokens": 12,
                    "total_tokens": 52,
                },
                SpanAttributeKey.MODEL: "gpt-4o-mini",
                SpanAttributeKey.MODEL_PROVIDER: "openai",
                SpanAttributeKey.LLM_COST: {
                    "input_cost": 0.00006,
                    "output_cost": 0.0000072,
                    "total_cost": 0.0000672,
                },
            }
        )
        answer = f"An answer to: {question}"
        llm.set_outputs({"choices": [{"message": {"role": "assistant", "content": answer}}]})
    return answer


@scorer
def not_empty(outputs) -> bool:
    return bool(outputs)


def fill(model_name: str, prompt_name: str) -> CrawlWorld:
    """Everything the UI's pages show, logged by the caller MLflow's client is pointed at."""
    client = MlflowClient()
    experiment_id = client.create_experiment("crawl-agent")
    mlflow.set_experiment(experiment_id=experiment_id)
    with mlflow.start_run(run_name="agent-v1") as run:
        mlflow.log_params({"temperature": "0.2", "retriever": "bm25"})
        for step in range(3):
            mlflow.log_metrics({"accuracy": 0.7 + step / 10, "loss": 1.0 - step / 5}, step=step)
        mlflow.log_text("The agent answers questions about Cedar.", "notes/readme.txt")
        mlflow.log_dict({"top_k": 3}, "config/retriever.json")
        mlflow.pyfunc.log_model(
            name="agent-model",
            python_model=EchoModel(),
            pip_requirements=["mlflow"],
            registered_model_name=model_name,
        )
        for question in QUESTIONS:
            agent(question)
    mlflow.flush_trace_async_logging()
    traces = mlflow.search_traces(locations=[experiment_id], return_type="list")
    trace_ids = [t.info.trace_id for t in traces]
    client.link_traces_to_run(trace_ids, run.info.run_id)
    human = AssessmentSource(source_type="HUMAN", source_id="olivia")
    mlflow.log_feedback(trace_id=trace_ids[0], name="helpful", value=True, source=human)
    mlflow.log_feedback(trace_id=trace_ids[1], name="helpful", value=False, source=human)
    mlflow.log_expectation(
        trace_id=trace_ids[0], name="expected_answer", value="A policy language", source=human
    )
    dataset = create_dataset(name="crawl-qa", experiment_id=experiment_id)
    dataset.merge_records(traces)
    Guidelines(
        name="polite", guidelines=["Answer politely."], model="openai:/gpt-4o-mini"
    ).register(experiment_id=experiment_id)
    mlflow.genai.evaluate(
        data=[{"inputs": {"question": q}} for q in QUESTIONS],
        predict_fn=agent,
        scorers=[not_empty],
    )
    client.set_registered_model_alias(model_name, "champion", "1")
    # a version of the same run in a model nobody else may read: not on the run's page
    client.create_registered_model(f"{model_name}-private")
    client.create_model_version(
        f"{model_name}-private", f"{run.info.artifact_uri}/agent-model", run_id=run.info.run_id
    )
    mlflow.genai.register_prompt(
        name=prompt_name, template="Answer briefly: {{question}}", commit_message="first"
    )
    return CrawlWorld(
        experiment_id=experiment_id,
        run_id=run.info.run_id,
        trace_id=trace_ids[0],
        dataset_id=dataset.dataset_id,
        model_name=model_name,
        model_version="1",
        prompt_name=prompt_name,
    )
