"""Errors the gateway returns, in MLflow's JSON shape so MLflow clients show them as usual."""

from __future__ import annotations

from starlette.responses import JSONResponse

# RFC 6750 realm announced in WWW-Authenticate.
REALM = "cedarflow"


class GatewayError(Exception):
    """A refusal with an HTTP status, an MLflow error code and a message for the user."""

    status_code = 400
    error_code = "BAD_REQUEST"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def to_response(self) -> JSONResponse:
        return mlflow_error_response(
            self.status_code, self.error_code, self.message, headers=self.headers
        )


class AuthenticationError(GatewayError):
    """No usable credentials (401). `reason` is for the log only, never sent to the client."""

    status_code = 401
    error_code = "UNAUTHENTICATED"

    def __init__(self, message: str, *, reason: str, token_present: bool = True) -> None:
        # RFC 6750: no error code when the request carried no token at all.
        challenge = f'Bearer realm="{REALM}"'
        if token_present:
            challenge += ', error="invalid_token"'
        super().__init__(message, headers={"WWW-Authenticate": challenge})
        self.reason = reason


class PermissionDenied(GatewayError):
    status_code = 403
    error_code = "PERMISSION_DENIED"


class UpstreamUnavailable(GatewayError):
    status_code = 502
    error_code = "TEMPORARILY_UNAVAILABLE"


class UpstreamTimeout(GatewayError):
    status_code = 504
    error_code = "DEADLINE_EXCEEDED"


def mlflow_error_response(
    status_code: int, error_code: str, message: str, *, headers: dict[str, str] | None = None
) -> JSONResponse:
    """{"error_code": ..., "message": ...} with the given status, as MLflow's server answers."""
    return JSONResponse(
        {"error_code": error_code, "message": message}, status_code=status_code, headers=headers
    )
