"""Route rows: registered models, model versions, aliases (prompts are registered models)."""

from __future__ import annotations

from gateway.routing.build import api, ref, rows
from gateway.routing.model import QUERY, Route
from store.vocabulary import ARTIFACT_PATH, LOGGED_MODEL, REGISTERED_MODEL, RUN, WORKSPACE

MODEL = ref(REGISTERED_MODEL, "name")
EVERYONE = ref(WORKSPACE)


def _registered_models() -> list[Route]:
    f = "registered-models"
    base = "/mlflow/registered-models"
    return [
        *rows("POST", api(2, f"{base}/create"), f, "CreateRegisteredModel", EVERYONE),
        *rows("GET", api(2, f"{base}/get"), f, "GetRegisteredModel", MODEL),
        *rows("POST", api(2, f"{base}/rename"), f, "RenameRegisteredModel", MODEL),
        *rows("PATCH", api(2, f"{base}/update"), f, "UpdateRegisteredModel", MODEL),
        *rows("DELETE", api(2, f"{base}/delete"), f, "DeleteRegisteredModel", MODEL),
        *rows(
            "GET",
            api(2, f"{base}/search"),
            f,
            "SearchRegisteredModels",
            EVERYONE,
            filter="registered_models",
        ),
        *rows("POST", api(2, f"{base}/set-tag"), f, "SetRegisteredModelTag", MODEL),
        *rows("DELETE", api(2, f"{base}/delete-tag"), f, "DeleteRegisteredModelTag", MODEL),
        *rows("GET", api(2, f"{base}/get-latest-versions"), f, "GetLatestVersions", MODEL),
        *rows("POST", api(2, f"{base}/get-latest-versions"), f, "GetLatestVersions", MODEL),
        *rows("POST", api(2, f"{base}/alias"), f, "SetRegisteredModelAlias", MODEL),
        *rows("DELETE", api(2, f"{base}/alias"), f, "DeleteRegisteredModelAlias", MODEL),
        *rows("GET", api(2, f"{base}/alias"), f, "GetModelVersionByAlias", MODEL),
    ]


def _model_versions() -> list[Route]:
    f = "model-versions"
    base = "/mlflow/model-versions"
    return [
        # a version may only point at a run, logged model or artifact the caller can read
        *rows(
            "POST",
            api(2, f"{base}/create"),
            f,
            "CreateModelVersion",
            MODEL,
            ref(RUN, "run_id", optional=True, action="GetRun"),
            ref(LOGGED_MODEL, "model_id", optional=True, action="GetLoggedModel"),
            ref(ARTIFACT_PATH, "source", action="DownloadArtifact"),
        ),
        *rows("GET", api(2, f"{base}/get"), f, "GetModelVersion", MODEL),
        *rows("PATCH", api(2, f"{base}/update"), f, "UpdateModelVersion", MODEL),
        *rows("DELETE", api(2, f"{base}/delete"), f, "DeleteModelVersion", MODEL),
        *rows(
            "GET",
            api(2, f"{base}/search"),
            f,
            "SearchModelVersions",
            EVERYONE,
            filter="model_versions",
        ),
        *rows("GET", api(2, f"{base}/get-download-uri"), f, "GetModelVersionDownloadUri", MODEL),
        *rows("POST", api(2, f"{base}/transition-stage"), f, "TransitionModelVersionStage", MODEL),
        *rows("POST", api(2, f"{base}/set-tag"), f, "SetModelVersionTag", MODEL),
        *rows("DELETE", api(2, f"{base}/delete-tag"), f, "DeleteModelVersionTag", MODEL),
        *rows(
            "GET",
            "/model-versions/get-artifact",
            f,
            "GetModelVersionArtifact",
            MODEL,
            params=QUERY,
        ),
    ]


def registry_routes() -> list[Route]:
    return [*_registered_models(), *_model_versions()]
