"""Tracing with MLflow's own client, unmodified: run by test_traces_locations.py with the
gateway's URL and a token in the environment; prints what it read back as one JSON line."""

from __future__ import annotations

import json
import sys

import mlflow

experiment_id = sys.argv[1]
mlflow.set_experiment(experiment_id=experiment_id)


@mlflow.trace(name="answer")
def answer(question: str) -> str:
    with mlflow.start_span("lookup") as span:
        span.set_inputs({"question": question})
        span.set_outputs("42")
    return "42"


answer("life")
mlflow.flush_trace_async_logging()
trace_id = mlflow.get_last_active_trace_id()
mlflow.set_trace_tag(trace_id, "reviewed", "yes")
trace = mlflow.get_trace(trace_id)
found = mlflow.search_traces(locations=[experiment_id], return_type="list")
print(
    json.dumps(
        {
            "trace_id": trace_id,
            "spans": sorted(s.name for s in trace.data.spans),
            "outputs": trace.data.spans[0].outputs,
            "tags": trace.info.tags,
            "searched": [t.info.trace_id for t in found],
            "searched_spans": {
                t.info.trace_id: sorted(s.name for s in t.data.spans) for t in found
            },
        }
    )
)
