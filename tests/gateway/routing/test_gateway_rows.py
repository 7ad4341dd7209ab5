"""The gateway's own calls are rows of the same route table, matched by the same matcher."""

from __future__ import annotations

import pytest

from gateway.body_limit import limit_for
from gateway.config import BodyLimits
from gateway.routing import match_route, mlflow_routes, offered_actions
from gateway.routing.model import ANSWER, FORWARD, OPEN, PERMISSIONS


@pytest.mark.parametrize(
    ("method", "path", "serve", "action"),
    [
        ("GET", "/metrics", ANSWER, "GetMetrics"),
        ("GET", "/healthz", OPEN, "Healthz"),
        ("GET", "/readyz", OPEN, "Readyz"),
        ("GET", "/oauth2/login", OPEN, "SignIn"),
        ("GET", "/oauth2/callback", OPEN, "SignInCallback"),
        ("POST", "/logout", OPEN, "SignOut"),
        ("GET", "/.well-known/cedarflow", OPEN, "ClientDiscovery"),
        ("POST", "/devidp/oauth2/token", OPEN, "DevToken"),
        ("GET", "/devidp/.well-known/jwks.json", OPEN, "DevJwks"),
        ("DELETE", "/devidp/anything/else", OPEN, "DevNotFound"),
        ("GET", "/api/3.0/cedarflow/permissions/list", PERMISSIONS, "Permissions"),
        ("PUT", "/ajax-api/3.0/cedarflow/permissions/grant", PERMISSIONS, "Permissions"),
        ("POST", "/api/3.0/mlflow/users/permissions/grant", PERMISSIONS, "MlflowPermissions"),
        ("GET", "/favicon.ico", FORWARD, "ServeStaticFile"),
        ("GET", "/ajax-api/2.0/mlflow/users/current", ANSWER, "GetCurrentUser"),
        ("GET", "/api/2.0/mlflow/users/current", ANSWER, "GetCurrentUser"),
        (
            "GET",
            "/ajax-api/3.0/mlflow/users/current/permissions",
            ANSWER,
            "ListCurrentUserPermissions",
        ),
        ("GET", "/api/3.0/mlflow/users/roles/list", ANSWER, "ListUserRoles"),
        ("GET", "/ajax-api/2.0/mlflow/users/list", ANSWER, "ListUsers"),
        ("PATCH", "/ajax-api/2.0/mlflow/users/update-password", ANSWER, "UpdateUserPassword"),
        ("GET", "/ajax-api/3.0/mlflow/assistant/config", ANSWER, "GetAssistantConfig"),
        ("POST", "/ajax-api/3.0/mlflow/ui-telemetry", ANSWER, "PostUiTelemetry"),
        ("GET", "/api/2.0/mlflow/runs/get", FORWARD, "GetRun"),
    ],
)
def test_one_matcher_routes_mlflows_calls_and_the_gateways(method, path, serve, action):
    route = match_route(method, path).route
    assert (route.serve, route.action) == (serve, action)


def test_the_gateways_rows_are_not_mlflows():
    paths = {r.path for r in mlflow_routes()}
    assert not {"/metrics", "/healthz", "/favicon.ico", "/oauth2/login"} & paths
    assert "Healthz" not in offered_actions() and "GetMetrics" in offered_actions()


def test_what_the_gateway_answers_without_credentials_is_held_to_the_form_limit():
    limits = BodyLimits(json=1000, large=2000, form=10)
    assert limit_for(limits, "POST", "/devidp/oauth2/token") == 10
    assert limit_for(limits, "POST", "/logout") == 10
    assert limit_for(limits, "POST", "/api/3.0/cedarflow/permissions/grant") == 1000
    assert limit_for(limits, "POST", "/api/2.0/mlflow/runs/log-batch") == 2000
