"""Route rows: experiments, runs, metrics, artifacts, logged models.

Each row names the Cedar action (MLflow's call name) and every resource the handler
touches, read from the same place the handler reads it (see RefSpec.source).
"""

from __future__ import annotations

from gateway.routing.build import ajax, api, ref, rows
from gateway.routing.model import JSON, NONE, QUERY, Route
from store.vocabulary import (
    ARTIFACT_PATH,
    EXPERIMENT,
    EXPERIMENT_NAME,
    LOGGED_MODEL,
    RUN,
    WORKSPACE,
)

RUN_ID_OR_UUID = ref(RUN, "run_id|run_uuid")
RUN_ID = ref(RUN, "run_id")
EXP_ID = ref(EXPERIMENT, "experiment_id")
EXP_IDS = ref(EXPERIMENT, "experiment_ids[]")
EXP_IDS_NARROWED = ref(EXPERIMENT, "experiment_ids[]", narrow=True)
PATH_MODEL = ref(LOGGED_MODEL, "{model_id}")
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


def tracking_routes() -> list[Route]:
    return [
        *_experiments(),
        *_runs(),
        *_artifacts(),
        *_logged_models(),
    ]
