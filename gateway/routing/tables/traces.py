"""Route rows: traces and assessments (REST and OTLP)."""

from __future__ import annotations

from gateway.routing.build import ajax, api, ref, rows
from gateway.routing.model import OTLP, QUERY, Route
from gateway.routing.tables.tracking import EXP_ID, EXP_IDS, EXP_IDS_NARROWED, RUN_ID
from store.vocabulary import EXPERIMENT, REGISTERED_MODEL, RUN, TRACE

PATH_TRACE_V2 = ref(TRACE, "{request_id}")
PATH_TRACE = ref(TRACE, "{trace_id}")


def _traces() -> list[Route]:
    f = "traces"
    v3_experiment = "trace.trace_info.trace_location.mlflow_experiment.experiment_id"
    # a trace id the client chose: if it exists, the caller must edit its own experiment too
    v3_trace = ref(TRACE, "trace.trace_info.trace_id", missing_ok=True)
    trace_ids = ref(TRACE, "trace_ids[]")
    # a trace logged asynchronously may not exist yet: the store keeps the link but counts it
    # only for a trace of the run's own experiment, which the run check already covers
    link_trace_ids = ref(TRACE, "trace_ids[]", missing_ok=True)
    return [
        *rows(
            "GET",
            ajax(2, "/mlflow/get-trace-artifact") + ajax(3, "/mlflow/get-trace-artifact"),
            f,
            "GetTraceArtifact",
            ref(TRACE, "request_id"),
            params=QUERY,
        ),
        *rows(
            "GET", api(2, "/mlflow/traces"), f, "SearchTraces", EXP_IDS_NARROWED, filter="traces"
        ),
        *rows("POST", api(2, "/mlflow/traces"), f, "StartTrace", EXP_ID),
        *rows("PATCH", api(2, "/mlflow/traces/{request_id}"), f, "EndTrace", PATH_TRACE_V2),
        *rows("GET", api(2, "/mlflow/traces/{request_id}/info"), f, "GetTraceInfo", PATH_TRACE_V2),
        *rows("PATCH", api(2, "/mlflow/traces/{request_id}/tags"), f, "SetTraceTag", PATH_TRACE_V2),
        *rows(
            "DELETE", api(2, "/mlflow/traces/{request_id}/tags"), f, "DeleteTraceTag", PATH_TRACE_V2
        ),
        *rows("POST", api(2, "/mlflow/traces/delete-traces"), f, "DeleteTraces", EXP_ID),
        *rows(
            "POST",
            api(2, "/mlflow/traces/link-prompts"),
            f,
            "LinkPromptsToTrace",
            ref(TRACE, "trace_id"),
            ref(REGISTERED_MODEL, "prompt_versions[].name", action="GetModelVersion"),
        ),
        *rows(
            "POST",
            api(2, "/mlflow/traces/link-to-run"),
            f,
            "LinkTracesToRun",
            RUN_ID,
            link_trace_ids,
        ),
        *rows(
            "POST",
            api(3, "/mlflow/traces"),
            f,
            "StartTraceV3",
            ref(EXPERIMENT, v3_experiment),
            v3_trace,
        ),
        *rows("GET", api(3, "/mlflow/traces/{trace_id}"), f, "GetTraceInfoV3", PATH_TRACE),
        *rows(
            "POST",
            api(3, "/mlflow/traces/{trace_id}/assessments"),
            f,
            "CreateAssessment",
            PATH_TRACE,
        ),
        *rows(
            "GET",
            api(3, "/mlflow/traces/{trace_id}/assessments/{assessment_id}"),
            f,
            "GetAssessment",
            PATH_TRACE,
        ),
        *rows(
            "PATCH",
            api(3, "/mlflow/traces/{trace_id}/assessments/{assessment_id}"),
            f,
            "UpdateAssessment",
            PATH_TRACE,
        ),
        *rows(
            "DELETE",
            api(3, "/mlflow/traces/{trace_id}/assessments/{assessment_id}"),
            f,
            "DeleteAssessment",
            PATH_TRACE,
        ),
        *rows("PATCH", api(3, "/mlflow/traces/{trace_id}/tags"), f, "SetTraceTagV3", PATH_TRACE),
        *rows(
            "DELETE", api(3, "/mlflow/traces/{trace_id}/tags"), f, "DeleteTraceTagV3", PATH_TRACE
        ),
        *rows(
            "GET",
            api(3, "/mlflow/traces/batchGet"),
            f,
            "BatchGetTraces",
            trace_ids,
            ref(EXPERIMENT, "experiment_ids[]", optional=True),
        ),
        *rows(
            "POST",
            api(3, "/mlflow/traces/batchGetInfos"),
            f,
            "BatchGetTraceInfos",
            trace_ids,
            ref(EXPERIMENT, "experiment_ids[]", optional=True),
        ),
        *rows(
            "POST",
            api(3, "/mlflow/traces/calculate-filter-correlation"),
            f,
            "CalculateTraceFilterCorrelation",
            EXP_IDS,
        ),
        *rows("POST", api(3, "/mlflow/traces/metrics"), f, "QueryTraceMetrics", EXP_IDS),
        *rows("POST", api(3, "/mlflow/traces/delete-traces"), f, "DeleteTracesV3", EXP_ID),
        *rows("GET", api(3, "/mlflow/traces/get"), f, "GetTrace", ref(TRACE, "trace_id")),
        *rows(
            "POST",
            api(3, "/mlflow/traces/search"),
            f,
            "SearchTracesV3",
            ref(EXPERIMENT, "locations[].mlflow_experiment.experiment_id", narrow=True),
            filter="traces",
        ),
        # OTLP ingest: the experiment travels in a header; every trace the spans name must be
        # new or one the caller may edit; an optional run link is checked too
        *rows(
            "POST",
            "/v1/traces",
            f,
            "ExportTraces",
            ref(EXPERIMENT, "header:x-mlflow-experiment-id"),
            ref(TRACE, "otlp:trace_ids", missing_ok=True),
            ref(RUN, "header:x-mlflow-run-id", optional=True, action="LinkTracesToRun"),
            params=OTLP,
        ),
    ]


def trace_routes() -> list[Route]:
    return _traces()
