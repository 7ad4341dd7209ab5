"""What the gateway answers for the UI's account call and its capability probes.

`users/current` names the signed-in caller in the shape of MLflow's basic-auth app, so the UI
shows who is signed in. The probes are answered exactly as a plain `mlflow server` 3.17.2
answers them with the feature absent (no assistant provider, telemetry disabled, no AI gateway
target, an empty MCP registry), so the UI hides those panels instead of showing ones that fail.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.routing.model import Endpoint
from gateway.routing.tables.ui import (
    ASSISTANT_CONFIG_ACTION,
    ASSISTANT_PROVIDERS_ACTION,
    CURRENT_USER_ACTION,
    GATEWAY_PROXY_ACTION,
    GET_TELEMETRY_ACTION,
    MCP_SERVERS_ACTION,
    POST_TELEMETRY_ACTION,
)
from store.handler.identity import Principal

PRINCIPAL_STATE = "principal"  # request.state attribute the gateway sets before answering

# MLflow's answers with the feature absent (assistant/api.py, telemetry's FALLBACK_UI_CONFIG,
# handlers.gateway_proxy_handler without MLFLOW_DEPLOYMENTS_TARGET, an empty MCP registry).
ASSISTANT_CONFIG = {"providers": {}, "projects": {}, "remote_access_allowed": False}
ASSISTANT_PROVIDERS = {"providers": [], "resolved": None, "gateway_vendor_options": {}}
UI_TELEMETRY = {"disable_ui_events": [], "disable_ui_telemetry": True, "ui_rollout_percentage": 0}
TELEMETRY_DISABLED = {"status": "disabled"}
NO_GATEWAY_ENDPOINTS = {"endpoints": []}
NO_MCP_SERVERS = {"mcp_servers": [], "next_page_token": None}


def user_number(principal: Principal) -> int:
    """A stable number for the UI's user id (MLflow's is an integer): from the principal id."""
    return int.from_bytes(hashlib.sha256(principal.subject.encode()).digest()[:6], "big")


def current_user(principal: Principal, *, signs_out: bool) -> dict:
    """MLflow basic-auth's `users/current` shape. `is_admin` stays false: MLflow's admin pages
    manage its own users and roles, which do not exist here. `is_basic_auth` shows the UI's
    Logout item, offered when a browser session can be ended from the UI."""
    user = {"id": user_number(principal), "username": principal.username, "is_admin": False}
    return {"user": user, "is_basic_auth": signs_out}


@dataclass(frozen=True)
class UiAnswers:
    signs_out: bool  # browser sign-in is on: the UI's Logout ends the session

    def endpoints(self) -> dict[str, Endpoint]:
        return {
            CURRENT_USER_ACTION: self.current_user,
            ASSISTANT_CONFIG_ACTION: _fixed(ASSISTANT_CONFIG),
            ASSISTANT_PROVIDERS_ACTION: _fixed(ASSISTANT_PROVIDERS),
            GET_TELEMETRY_ACTION: _fixed(UI_TELEMETRY),
            POST_TELEMETRY_ACTION: _fixed(TELEMETRY_DISABLED),  # records dropped unread
            GATEWAY_PROXY_ACTION: _fixed(NO_GATEWAY_ENDPOINTS),
            MCP_SERVERS_ACTION: _fixed(NO_MCP_SERVERS),
        }

    async def current_user(self, request: Request) -> Response:
        principal = getattr(request.state, PRINCIPAL_STATE)
        return JSONResponse(current_user(principal, signs_out=self.signs_out))


def _fixed(body: dict) -> Endpoint:
    async def answer(request: Request) -> Response:
        return JSONResponse(body)

    return answer
