"""Readers of a registered model may load its versions' files (`mlflow.pyfunc.load_model`).

A version's files are stored with what it was registered from: a logged model's artifacts
(`models:/<model id>`, the logged model's own folder) or a run's artifacts at the path the
source names (`runs:/<run id>/<path>`, the folder `<experiment>/<run id>/artifacts/<path>`).
Reading them is decided on the experiment first, like any artifact; when that is denied, the
call is decided again as `GetModelVersionArtifact` on each registered model a version of which
was registered from those files, and allowed if one of them allows it.

Which versions those are is a fact of the store (store/ownership.py), checked against each
version's own item, so a forged tag or a version registered from elsewhere gains nothing; for
a run, only downloads under a version's storage location qualify, never the rest of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gateway.authz.decide import Authorizer, BindingsLookup, PrincipalLike, RequestDecision
from gateway.routing.parse import ParsedRequest, ResourceRef
from store.vocabulary import LOGGED_MODEL, REGISTERED_MODEL

MODEL_READER_ACTION = "GetModelVersionArtifact"
# Calls that read a logged model's or a run's files.
MODEL_ARTIFACT_ACTIONS = frozenset(
    {
        "DownloadArtifact",
        "ListArtifacts",
        "GetLoggedModel",
        "ListLoggedModelArtifacts",
        "GetLoggedModelArtifact",
    }
)


@dataclass(frozen=True)
class ArtifactRead:
    """Whose files a call reads: a logged model's, or a run's at an artifact-proxy path."""

    logged_model: str | None = None
    run_id: str | None = None
    path: str | None = None  # `<experiment>/...` as the artifact proxy's routes carry it

    @property
    def experiment_id(self) -> str | None:
        """The experiment the path names (a logged model's files must be in its own)."""
        return self.path.split("/", 1)[0] if self.path else None


def artifact_read(parsed: ParsedRequest) -> ArtifactRead | None:
    """The files `parsed` reads, when a model reader could be allowed to read them."""
    if parsed.action not in MODEL_ARTIFACT_ACTIONS:
        return None
    for ref in parsed.resources:
        if ref.kind == LOGGED_MODEL:
            return ArtifactRead(logged_model=ref.id, path=parsed.artifact_path)
    path = parsed.artifact_path or ""
    parts = path.split("/")
    if len(parts) >= 3 and parts[1] == "models":  # <experiment>/models/<model id>/...
        return ArtifactRead(logged_model=parts[2], path=path)
    if len(parts) >= 3 and parts[2] == "artifacts":  # <experiment>/<run id>/artifacts/...
        return ArtifactRead(run_id=parts[1], path=path)
    return None


def as_model_reader(
    authorizer: Authorizer,
    principal: PrincipalLike,
    parsed: ParsedRequest,
    result: RequestDecision,
    models: tuple[str, ...],
    lookup: BindingsLookup,
) -> RequestDecision:
    """`result`, or an allow as `GetModelVersionArtifact` on the first of `models` that gives it.

    `lookup` must answer for `model_refs(models)`.
    """
    for ref in model_refs(models):
        decision = authorizer.decide(principal, MODEL_READER_ACTION, [ref], lookup)
        if decision.allowed:
            return RequestDecision(replace(decision, action=parsed.action), (decision,))
    return result


def model_refs(models: tuple[str, ...]) -> list[ResourceRef]:
    return [ResourceRef(REGISTERED_MODEL, name, MODEL_READER_ACTION) for name in models]
