"""MLflow request-auth plugin: `MLFLOW_TRACKING_AUTH=cedarflow` adds a fresh bearer token.

Every request MLflow's client sends gets `Authorization: Bearer <access token>` for the gateway it
goes to, renewed shortly before the token's `exp`:
- with `CEDARFLOW_CLIENT_ID` and `CEDARFLOW_CLIENT_SECRET` set (a job), from the client-credentials
  grant at the token endpoint the gateway names in `/.well-known/cedarflow`;
- otherwise from the refresh token `cedarflow login --url GATEWAY` stored.
"""

from __future__ import annotations

import os
import threading

import httpx
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking.request_auth.abstract_request_auth_provider import RequestAuthProvider

from gateway.client.credentials import (
    CLIENT_ID_ENV,
    CLIENT_SECRET_ENV,
    ClientAuthError,
    CredentialStore,
    RefreshingToken,
    client_credentials_grant,
    discover,
    gateway_key,
    refresh_grant,
)

PROVIDER_NAME = "cedarflow"


class CedarflowAuthProvider(RequestAuthProvider):
    """Registered under the `mlflow.request_auth_provider` entry point."""

    def get_name(self) -> str:
        return PROVIDER_NAME

    def get_auth(self) -> requests.auth.AuthBase:
        return shared_auth()


class CedarflowAuth(requests.auth.AuthBase):
    """Puts the current token of the request's gateway on each request."""

    def __init__(self, environ: dict[str, str] | None = None, store: CredentialStore | None = None):
        self._environ = os.environ if environ is None else environ
        self._store = store
        self._tokens: dict[str, RefreshingToken] = {}
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=15.0)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        try:
            token = self.token_for(request.url or "")
        except ClientAuthError as exc:
            raise MlflowException(f"Cedarflow authentication: {exc}") from None
        request.headers["Authorization"] = f"Bearer {token}"
        return request

    def token_for(self, url: str) -> str:
        gateway = gateway_key(url)
        with self._lock:
            source = self._tokens.get(gateway)
            if source is None:
                source = self._tokens[gateway] = self._source_for(gateway)
        return source.token()

    def _source_for(self, gateway: str) -> RefreshingToken:
        client_id = self._environ.get(CLIENT_ID_ENV)
        client_secret = self._environ.get(CLIENT_SECRET_ENV)
        if client_id and client_secret:
            token_endpoint = discover(gateway, self._http).token_endpoint
            return RefreshingToken(
                lambda: client_credentials_grant(token_endpoint, client_id, client_secret)
            )
        store = self._store or CredentialStore()
        login = store.load(gateway)
        if login is None:
            raise ClientAuthError(
                f"not signed in to {gateway}: run `cedarflow login --url {gateway}`, or set "
                f"{CLIENT_ID_ENV} and {CLIENT_SECRET_ENV} for a machine client"
            )
        return RefreshingToken(lambda: refresh_grant(login))


_shared: CedarflowAuth | None = None
_shared_lock = threading.Lock()


def shared_auth() -> CedarflowAuth:
    """One auth object per process, so its tokens are reused across MLflow's calls."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = CedarflowAuth()
        return _shared
