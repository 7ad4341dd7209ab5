"""How MLflow's client shows the gateway's answers, for the tests that drive the real client."""

from __future__ import annotations

from collections.abc import Callable

import requests
from client_support import mlflow_client_of  # noqa: F401 (what the tests here import)
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
