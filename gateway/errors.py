"""The gateway's one error type, answered in MLflow's JSON shape so MLflow clients show it as usual.

Any step may raise a GatewayError; the app has one handler for it (`error_handler`), as Starlette
does with HTTPException. Values refused before a decision, denials, upstream failures and the
permissions API's errors are all this type; only authentication adds what a 401 needs.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

# RFC 6750 realm announced in WWW-Authenticate.
REALM = "cedarflow"


class GatewayError(Exception):
    """An answer with an HTTP status, an MLflow error code and a message for the user."""

    def __init__(
        self,
        status_code: int,
        error_code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.message = message
        self.headers = dict(headers or {})

    def to_json(self) -> dict[str, str]:
        return {"error_code": self.error_code, "message": self.message}

    def to_response(self) -> JSONResponse:
        return JSONResponse(self.to_json(), status_code=self.status_code, headers=self.headers)

    def __str__(self) -> str:
        return f"{self.status_code} {self.error_code}: {self.message}"


class AuthenticationError(GatewayError):
    """No usable credentials (401). `reason` is for the log only, never sent to the client."""

    def __init__(self, message: str, *, reason: str, token_present: bool = True) -> None:
        # RFC 6750: no error code when the request carried no token at all.
        challenge = f'Bearer realm="{REALM}"'
        if token_present:
            challenge += ', error="invalid_token"'
        super().__init__(401, "UNAUTHENTICATED", message, headers={"WWW-Authenticate": challenge})
        self.reason = reason


def bad_request(message: str) -> GatewayError:
    return GatewayError(400, "INVALID_PARAMETER_VALUE", message)


def forbidden(message: str) -> GatewayError:
    return GatewayError(403, "PERMISSION_DENIED", message)


def permission_denied(action: str, what: str) -> GatewayError:
    """The denial of a decided call: the action and what the caller named, nothing more."""
    return forbidden(f"Permission denied: {action} on {what}.")


def not_found(message: str) -> GatewayError:
    return GatewayError(404, "ENDPOINT_NOT_FOUND", message)


def upstream_unavailable(message: str) -> GatewayError:
    return GatewayError(502, "TEMPORARILY_UNAVAILABLE", message)


def upstream_timeout(message: str) -> GatewayError:
    return GatewayError(504, "DEADLINE_EXCEEDED", message)


async def error_handler(request: Request, exc: Exception) -> Response:
    """The app's handler for GatewayError (registered in gateway/app.py)."""
    assert isinstance(exc, GatewayError)
    return exc.to_response()
