"""Route rows for the calls MLflow's UI makes on every page to learn who is signed in and
which features the server has. The gateway answers them itself:

    .../mlflow/users/current            the signed-in user, and its permissions, roles, the
      /current/permissions, /roles/list,  user names and a refused password change
      /list, /update-password             (gateway-own rows: MLflow serves them only with its
                                          basic-auth app; gateway/account_answers.py)
    .../mlflow/assistant/config,        MLflow rows: answered as a plain `mlflow server` without
      /providers, ui-telemetry,           the feature answers (assistant not set up, telemetry
      gateway-proxy, mcp-servers (list)   off, no AI gateway endpoints, no MCP servers), so the
                                          UI hides those panels
"""

from __future__ import annotations

from gateway.routing.build import ajax, api, ref, rows
from gateway.routing.model import ANSWER, NONE, Route
from store.vocabulary import WORKSPACE

EVERYONE = ref(WORKSPACE)
CURRENT_USER_ACTION = "GetCurrentUser"
CURRENT_PERMISSIONS_ACTION = "ListCurrentUserPermissions"
USER_ROLES_ACTION = "ListUserRoles"
LIST_USERS_ACTION = "ListUsers"
UPDATE_PASSWORD_ACTION = "UpdateUserPassword"  # noqa: S105 - an action name
ASSISTANT_CONFIG_ACTION = "GetAssistantConfig"
ASSISTANT_PROVIDERS_ACTION = "ListAssistantProviders"
GET_TELEMETRY_ACTION = "GetUiTelemetry"
POST_TELEMETRY_ACTION = "PostUiTelemetry"
GATEWAY_PROXY_ACTION = "GatewayProxy"
MCP_SERVERS_ACTION = "ListMcpServers"


def _answered(method: str, paths: tuple[str, ...], family: str, action: str) -> list[Route]:
    return rows(method, paths, family, action, EVERYONE, params=NONE, serve=ANSWER)


def ui_probe_routes() -> list[Route]:
    """MLflow's rows the UI probes on page load, answered like a server without the feature."""
    return [
        *_answered("GET", ajax(3, "/mlflow/assistant/config"), "assistant",
                   ASSISTANT_CONFIG_ACTION),
        *_answered("GET", ajax(3, "/mlflow/assistant/providers"), "assistant",
                   ASSISTANT_PROVIDERS_ACTION),
        *_answered("GET", ajax(3, "/mlflow/ui-telemetry"), "ui", GET_TELEMETRY_ACTION),
        *_answered("POST", ajax(3, "/mlflow/ui-telemetry"), "ui", POST_TELEMETRY_ACTION),
        *_answered("GET", ajax(2, "/mlflow/gateway-proxy"), "ai-gateway", GATEWAY_PROXY_ACTION),
        *_answered("POST", ajax(2, "/mlflow/gateway-proxy"), "ai-gateway", GATEWAY_PROXY_ACTION),
        *_answered("GET", api(3, "/mlflow/mcp-servers"), "mcp", MCP_SERVERS_ACTION),
    ]  # fmt: skip


def account_routes() -> list[Route]:
    """The gateway's own rows for the signed-in user (MLflow's basic-auth app serves these):
    who is signed in, the caller's roles and permissions, the user names (for the review
    queues' reviewer picker), and a refusal to change a password kept by the identity
    provider."""
    f = "account"
    return [
        *_answered("GET", api(2, "/mlflow/users/current"), f, CURRENT_USER_ACTION),
        *_answered("GET", api(3, "/mlflow/users/current/permissions"), f,
                   CURRENT_PERMISSIONS_ACTION),
        *_answered("GET", api(3, "/mlflow/users/roles/list"), f, USER_ROLES_ACTION),
        *_answered("GET", api(2, "/mlflow/users/list"), f, LIST_USERS_ACTION),
        *_answered("PATCH", api(2, "/mlflow/users/update-password"), f, UPDATE_PASSWORD_ACTION),
    ]  # fmt: skip
