"""The gateway's own rows: the calls it answers itself, routed by the same matcher as MLflow's.

    /metrics                         GetMetrics on the workspace: decided, then answered here
    .../permissions/...              the permissions API (gateway/permissions_api.py)
    /healthz, /readyz                health probes: no credentials
    /oauth2/..., /logout,            browser sign-in and where command-line clients sign in
      /.well-known/cedarflow           (gateway/authn/browser.py): no credentials
    /devidp/...                      the dev identity provider (gateway/devidp/): no credentials,
                                       404 when it is off
    /favicon.ico                     asked for by browsers before they sign in: forwarded as is

MLflow's route inventory is compared with MLflow's rows only (`mlflow_routes`), never these.
"""

from __future__ import annotations

from gateway.routing.build import answered, ref, rows
from gateway.routing.model import ANSWER, NONE, OPEN, PERMISSIONS, Route
from store.vocabulary import WORKSPACE

METRICS_PATH = "/metrics"
METRICS_ACTION = "GetMetrics"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
LOGIN_PATH = "/oauth2/login"
CALLBACK_PATH = "/oauth2/callback"
SIGNED_OUT_PATH = "/oauth2/signed-out"
LOGOUT_PATH = "/logout"
CLIENT_DISCOVERY_PATH = "/.well-known/cedarflow"
DEV_IDP_PATH = "/devidp"  # the dev identity provider's issuer, under the gateway's URL
MLFLOW_PERMISSIONS = "/mlflow/users/permissions"  # MLflow's own permissions API
OWN_PERMISSIONS = "/cedarflow/permissions"  # Cedarflow's: groups, listings, effective roles
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def gateway_routes() -> list[Route]:
    return [
        *rows("GET", METRICS_PATH, "gateway", METRICS_ACTION, ref(WORKSPACE), params=NONE,
              serve=ANSWER),
        *_permissions(),
        *_open("probes", ("GET", HEALTH_PATH, "Healthz"), ("GET", READY_PATH, "Readyz")),
        *_open(
            "sign-in",
            ("GET", LOGIN_PATH, "SignIn"),
            ("GET", CALLBACK_PATH, "SignInCallback"),
            ("GET", LOGOUT_PATH, "SignOut"),
            ("POST", LOGOUT_PATH, "SignOut"),
            ("GET", SIGNED_OUT_PATH, "SignedOut"),
            ("GET", CLIENT_DISCOVERY_PATH, "ClientDiscovery"),
        ),
        *_open(
            "dev-idp",
            ("GET", f"{DEV_IDP_PATH}/.well-known/jwks.json", "DevJwks"),
            ("GET", f"{DEV_IDP_PATH}/.well-known/openid-configuration", "DevDiscovery"),
            ("GET", f"{DEV_IDP_PATH}/oauth2/authorize", "DevSignInPage"),
            ("POST", f"{DEV_IDP_PATH}/oauth2/authorize", "DevSignIn"),
            ("POST", f"{DEV_IDP_PATH}/oauth2/token", "DevToken"),
            ("GET", f"{DEV_IDP_PATH}/logout", "DevSignOut"),
            *((m, f"{DEV_IDP_PATH}/{{path:path}}", "DevNotFound") for m in _METHODS),
        ),
        # forwarded without a caller, as MLflow's UI files are
        *rows("GET", "/favicon.ico", "ui", "ServeStaticFile", ref(WORKSPACE), params=NONE,
              anonymous=True),
    ]  # fmt: skip


def _permissions() -> list[Route]:
    out: list[Route] = []
    for method in _METHODS:  # the permissions API answers a wrong method itself (405)
        for version in (f"/api/3.0{MLFLOW_PERMISSIONS}", f"/ajax-api/3.0{MLFLOW_PERMISSIONS}"):
            out.append(
                answered(method, f"{version}/{{call:path}}", PERMISSIONS, "MlflowPermissions")
            )
        for version in (f"/api/3.0{OWN_PERMISSIONS}", f"/ajax-api/3.0{OWN_PERMISSIONS}"):
            out.append(answered(method, f"{version}/{{call:path}}", PERMISSIONS, "Permissions"))
    return out


def _open(family: str, *calls: tuple[str, str, str]) -> list[Route]:
    return [answered(method, path, OPEN, action, family=family) for method, path, action in calls]
