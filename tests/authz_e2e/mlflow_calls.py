"""How MLflow's client shows the gateway's answers, for the tests that drive the real client."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import requests
from mlflow.exceptions import MlflowException, RestException


def denied(call: Callable[[], object]) -> bool:
    """The call fails with the gateway's 403 (the client reports it in more than one way)."""
    try:
        call()
    except (MlflowException, RestException, requests.HTTPError) as exc:
        return getattr(exc, "error_code", None) == "PERMISSION_DENIED" or (
            "PERMISSION_DENIED" in str(exc)
        )
    return False


@contextlib.contextmanager
def mlflow_client_of(url: str, token: str) -> Iterator[None]:
    """MLflow's client (fluent API, MlflowClient, `cedarflow` commands) on `url` with `token`."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN")}
    os.environ["MLFLOW_TRACKING_URI"] = url
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
