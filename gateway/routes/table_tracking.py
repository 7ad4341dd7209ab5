"""Route rows: experiments, runs, metrics, artifacts, logged models, traces, datasets, scorers.

Each row names the Cedar action (MLflow's call name) and every resource the handler
touches, read from the same place the handler reads it (see RefSpec.source).
"""

from __future__ import annotations

from gateway.routes.build import ajax, api, ref, rows
from gateway.routes.model import (
    ARTIFACT_PATH,
    DATASET,
    EXPERIMENT,
    EXPERIMENT_NAME,
    JSON,
    LOGGED_MODEL,
    NONE,
    QUERY,
    REGISTERED_MODEL,
    RUN,
    TRACE,
    WORKSPACE,
    Route,
)

RUN_ID_OR_UUID = ref(RUN, "run_id|run_uuid")
RUN_ID = ref(RUN, "run_id")
EXP_ID = ref(EXPERIMENT, "experiment_id")
EXP_IDS = ref(EXPERIMENT, "experiment_ids[]")
EXP_IDS_NARROWED = ref(EXPERIMENT, "experiment_ids[]", narrow=True)
PATH_MODEL = ref(LOGGED_MODEL, "{model_id}")
PATH_TRACE_V2 = ref(TRACE, "{request_id}")
PATH_TRACE = ref(TRACE, "{trace_id}")
PATH_DATASET = ref(DATASET, "{dataset_id}")
PATH_ARTIFACT = ref(ARTIFACT_PATH, "artifact:{artifact_path}")
EVERYONE = ref(WORKSPACE)


def _experiments() -> list[Route]:
    f = "experiments"
    return [
        *rows(
            "POST",
            api(2, "/mlflow/experiments/create"),
            f,
            "CreateExperiment",
            EVERYONE,
            # a caller-chosen artifact location is a separate, admin-only decision
            ref(WORKSPACE, "artifact_location", action="SetArtifactLocation", optional=True),
        ),
        *rows("POST", api(2, "/mlflow/experiments/delete"), f, "DeleteExperiment", EXP_ID),
        *rows("POST", api(2, "/mlflow/experiments/restore"), f, "RestoreExperiment", EXP_ID),
        *rows("POST", api(2, "/mlflow/experiments/update"), f, "UpdateExperiment", EXP_ID),
        *rows(
            "POST",
            api(2, "/mlflow/experiments/set-experiment-tag"),
            f,
            "SetExperimentTag",
            EXP_ID,
        ),
        *rows(
            "POST",
            api(2, "/mlflow/experiments/delete-experiment-tag"),
            f,
            "DeleteExperimentTag",
            EXP_ID,
        ),
        *rows("GET", api(2, "/mlflow/experiments/get"), f, "GetExperiment", EXP_ID),
        # mlflow.set_experiment() creates the experiment on a 404, so an unknown name is
        # forwarded; the "experiment" filter re-checks the experiment a response returns
        *rows(
            "GET",
            api(2, "/mlflow/experiments/get-by-name"),
            f,
            "GetExperimentByName",
            ref(EXPERIMENT_NAME, "experiment_name", missing_ok=True),
            filter="experiment",
        ),
        *rows(
            "GET",
            api(2, "/mlflow/experiments/search"),
            f,
            "SearchExperiments",
            EVERYONE,
            filter="experiments",
        ),
        *rows(
            "POST",
            api(2, "/mlflow/experiments/search"),
            f,
            "SearchExperiments",
            EVERYONE,
            filter="experiments",
        ),
    ]


def _runs() -> list[Route]:
    f = "runs"
    logged_model_of_metric = ref(LOGGED_MODEL, "model_id", optional=True)
    return [
        *rows("POST", api(2, "/mlflow/runs/create"), f, "CreateRun", EXP_ID),
        *rows(
            "POST",
            ajax(2, "/mlflow/runs/create-promptlab-run"),
            f,
            "CreatePromptlabRun",
            EXP_ID,
            params=JSON,
        ),
        *rows("POST", api(2, "/mlflow/runs/delete"), f, "DeleteRun", RUN_ID),
        *rows("POST", api(2, "/mlflow/runs/restore"), f, "RestoreRun", RUN_ID),
        *rows("POST", api(2, "/mlflow/runs/update"), f, "UpdateRun", RUN_ID_OR_UUID),
        *rows(
            "POST",
            api(2, "/mlflow/runs/log-metric"),
            f,
            "LogMetric",
            RUN_ID_OR_UUID,
            logged_model_of_metric,
        ),
        *rows("POST", api(2, "/mlflow/runs/log-parameter"), f, "LogParam", RUN_ID_OR_UUID),
        *rows("POST", api(2, "/mlflow/runs/set-tag"), f, "SetTag", RUN_ID_OR_UUID),
        *rows("POST", api(2, "/mlflow/runs/delete-tag"), f, "DeleteTag", RUN_ID),
        *rows(
            "POST",
            api(2, "/mlflow/runs/log-batch"),
            f,
            "LogBatch",
            RUN_ID,
            ref(RUN, "metrics[].run_id", optional=True),
            ref(LOGGED_MODEL, "metrics[].model_id", optional=True),
        ),
        *rows(
            "POST",
            api(2, "/mlflow/runs/log-inputs"),
            f,
            "LogInputs",
            RUN_ID,
            ref(LOGGED_MODEL, "models[].model_id", optional=True, action="GetLoggedModel"),
        ),
        *rows(
            "POST",
            api(2, "/mlflow/runs/outputs"),
            f,
            "LogOutputs",
            RUN_ID,
            ref(LOGGED_MODEL, "models[].model_id", optional=True),
        ),
        *rows("POST", api(2, "/mlflow/runs/log-model"), f, "LogModel", RUN_ID),
        *rows("GET", api(2, "/mlflow/runs/get"), f, "GetRun", RUN_ID_OR_UUID),
        *rows(
            "POST",
            api(2, "/mlflow/runs/search"),
            f,
            "SearchRuns",
            EXP_IDS_NARROWED,
            filter="runs",
        ),
        *rows("GET", api(2, "/mlflow/metrics/get-history"), f, "GetMetricHistory", RUN_ID_OR_UUID),
        *rows(
            "GET",
            ajax(2, "/mlflow/metrics/get-history-bulk"),
            f,
            "GetMetricHistoryBulk",
            ref(RUN, "run_id[]"),
            params=QUERY,
        ),
        *rows(
            "GET",
            api(2, "/mlflow/metrics/get-history-bulk-interval"),
            f,
            "GetMetricHistoryBulkInterval",
            ref(RUN, "run_ids[]"),
        ),
    ]


def _artifacts() -> list[Route]:
    f = "artifacts"
    return [
        *rows("GET", api(2, "/mlflow/artifacts/list"), f, "ListArtifacts", RUN_ID_OR_UUID),
        *rows(
            "POST",
            api(2, "/mlflow/artifacts/presigned-download-url"),
            f,
            "CreatePresignedDownloadUrl",
            RUN_ID,
        ),
        *rows(
            "POST",
            api(2, "/mlflow/artifacts/presigned-upload-url"),
            f,
            "CreatePresignedUploadUrl",
            ref(RUN, "run_id", optional=True),
            ref(LOGGED_MODEL, "model_id", optional=True),
        ),
        # the handler reads run_uuid only; the pair rule refuses a disagreeing run_id
        *rows(
            "POST",
            ajax(2, "/mlflow/upload-artifact"),
            f,
            "UploadArtifact",
            RUN_ID_OR_UUID,
            params=QUERY,
        ),
        *rows("GET", "/get-artifact", f, "DownloadArtifact", RUN_ID_OR_UUID, params=QUERY),
        *rows(
            "GET",
            api(2, "/mlflow-artifacts/artifacts"),
            f,
            "ListArtifacts",
            ref(ARTIFACT_PATH, "artifact:path"),
        ),
        *rows(
            "GET",
            api(2, "/mlflow-artifacts/artifacts/{artifact_path:path}"),
            f,
            "DownloadArtifact",
            PATH_ARTIFACT,
            params=NONE,
        ),
        *rows(
            "PUT",
            api(2, "/mlflow-artifacts/artifacts/{artifact_path:path}"),
            f,
            "UploadArtifact",
            PATH_ARTIFACT,
            params=NONE,
        ),
        *rows(
            "DELETE",
            api(2, "/mlflow-artifacts/artifacts/{artifact_path:path}"),
            f,
            "DeleteArtifact",
            PATH_ARTIFACT,
            params=NONE,
        ),
        *rows(
            "GET",
            api(2, "/mlflow-artifacts/presigned/{artifact_path:path}"),
            f,
            "GetPresignedDownloadUrl",
            PATH_ARTIFACT,
            params=NONE,
        ),
        *rows(
            "POST",
            api(2, "/mlflow-artifacts/mpu/create/{artifact_path:path}"),
            f,
            "CreateMultipartUpload",
            PATH_ARTIFACT,
        ),
        *rows(
            "POST",
            api(2, "/mlflow-artifacts/mpu/complete/{artifact_path:path}"),
            f,
            "CompleteMultipartUpload",
            PATH_ARTIFACT,
        ),
        *rows(
            "POST",
            api(2, "/mlflow-artifacts/mpu/abort/{artifact_path:path}"),
            f,
            "AbortMultipartUpload",
            PATH_ARTIFACT,
        ),
    ]


def _logged_models() -> list[Route]:
    f = "logged-models"
    base = "/mlflow/logged-models"
    return [
        *rows(
            "POST",
            api(2, base),
            f,
            "CreateLoggedModel",
            EXP_ID,
            ref(RUN, "source_run_id", optional=True, action="GetRun"),
        ),
        *rows(
            "POST",
            api(2, f"{base}/search"),
            f,
            "SearchLoggedModels",
            EXP_IDS_NARROWED,
            filter="logged_models",
        ),
        *rows("GET", api(2, f"{base}/{{model_id}}"), f, "GetLoggedModel", PATH_MODEL),
        *rows("PATCH", api(2, f"{base}/{{model_id}}"), f, "FinalizeLoggedModel", PATH_MODEL),
        *rows("DELETE", api(2, f"{base}/{{model_id}}"), f, "DeleteLoggedModel", PATH_MODEL),
        *rows(
            "GET",
            api(2, f"{base}/{{model_id}}/artifacts/directories"),
            f,
            "ListLoggedModelArtifacts",
            PATH_MODEL,
        ),
        *rows(
            "GET",
            ajax(2, f"{base}/{{model_id}}/artifacts/files"),
            f,
            "GetLoggedModelArtifact",
            PATH_MODEL,
            params=QUERY,
        ),
        *rows("POST", api(2, f"{base}/{{model_id}}/params"), f, "LogLoggedModelParams", PATH_MODEL),
        *rows("PATCH", api(2, f"{base}/{{model_id}}/tags"), f, "SetLoggedModelTags", PATH_MODEL),
        *rows(
            "DELETE",
            api(2, f"{base}/{{model_id}}/tags/{{tag_key}}"),
            f,
            "DeleteLoggedModelTag",
            PATH_MODEL,
        ),
    ]


def _traces() -> list[Route]:
    f = "traces"
    v3_experiment = "trace.trace_info.trace_location.mlflow_experiment.experiment_id"
    trace_ids = ref(TRACE, "trace_ids[]")
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
            trace_ids,
        ),
        *rows("POST", api(3, "/mlflow/traces"), f, "StartTraceV3", ref(EXPERIMENT, v3_experiment)),
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
        # OTLP ingest: the experiment travels in a header; an optional run link is checked too
        *rows(
            "POST",
            "/v1/traces",
            f,
            "ExportTraces",
            ref(EXPERIMENT, "header:x-mlflow-experiment-id"),
            ref(RUN, "header:x-mlflow-run-id", optional=True, action="LinkTracesToRun"),
            params=NONE,
        ),
    ]


def _datasets() -> list[Route]:
    f = "datasets"
    base = "/mlflow/datasets"
    return [
        *rows(
            "POST",
            ajax(2, "/mlflow/experiments/search-datasets"),
            f,
            "SearchDatasets",
            EXP_IDS,
        ),
        *rows("POST", api(3, f"{base}/create"), f, "CreateDataset", EXP_IDS),
        *rows(
            "GET",
            api(3, f"{base}/search"),
            f,
            "SearchEvaluationDatasets",
            EXP_IDS_NARROWED,
            filter="datasets",
        ),
        *rows(
            "POST",
            api(3, f"{base}/search"),
            f,
            "SearchEvaluationDatasets",
            EXP_IDS_NARROWED,
            filter="datasets",
        ),
        *rows("GET", api(3, f"{base}/{{dataset_id}}"), f, "GetDataset", PATH_DATASET),
        *rows("DELETE", api(3, f"{base}/{{dataset_id}}"), f, "DeleteDataset", PATH_DATASET),
        *rows(
            "GET",
            api(3, f"{base}/{{dataset_id}}/experiment-ids"),
            f,
            "GetDatasetExperimentIds",
            PATH_DATASET,
        ),
        *rows(
            "GET", api(3, f"{base}/{{dataset_id}}/records"), f, "GetDatasetRecords", PATH_DATASET
        ),
        *rows(
            "POST",
            api(3, f"{base}/{{dataset_id}}/records"),
            f,
            "UpsertDatasetRecords",
            PATH_DATASET,
        ),
        *rows(
            "DELETE",
            api(3, f"{base}/{{dataset_id}}/records"),
            f,
            "DeleteDatasetRecords",
            PATH_DATASET,
        ),
        *rows(
            "POST",
            api(3, f"{base}/{{dataset_id}}/add-experiments"),
            f,
            "AddDatasetToExperiments",
            PATH_DATASET,
            EXP_IDS,
        ),
        *rows(
            "POST",
            api(3, f"{base}/{{dataset_id}}/remove-experiments"),
            f,
            "RemoveDatasetFromExperiments",
            PATH_DATASET,
            EXP_IDS,
        ),
        *rows("PATCH", api(3, f"{base}/{{dataset_id}}/tags"), f, "SetDatasetTags", PATH_DATASET),
        *rows(
            "DELETE",
            api(3, f"{base}/{{dataset_id}}/tags/{{key}}"),
            f,
            "DeleteDatasetTag",
            PATH_DATASET,
        ),
    ]


def _scorers() -> list[Route]:
    f = "scorers"
    base = "/mlflow/scorers"
    return [
        *rows(
            "GET",
            api(3, f"{base}/list"),
            f,
            "ListScorers",
            ref(EXPERIMENT, "experiment_id", optional=True),
            ref(EXPERIMENT, "experiment_ids[]", optional=True),
        ),
        *rows("GET", api(3, f"{base}/get"), f, "GetScorer", EXP_ID),
        *rows("GET", api(3, f"{base}/versions"), f, "ListScorerVersions", EXP_ID),
        *rows("POST", api(3, f"{base}/register"), f, "RegisterScorer", EXP_ID),
        *rows("DELETE", api(3, f"{base}/delete"), f, "DeleteScorer", EXP_ID),
        *rows("PUT", api(3, f"{base}/online-config"), f, "UpsertOnlineScoringConfig", EXP_ID),
    ]


def tracking_routes() -> list[Route]:
    return [
        *_experiments(),
        *_runs(),
        *_artifacts(),
        *_logged_models(),
        *_traces(),
        *_datasets(),
        *_scorers(),
    ]
