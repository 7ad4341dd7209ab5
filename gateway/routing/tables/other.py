"""Route rows: server, UI and GraphQL, and the families this deployment does not offer.

A family is not offered when its resources cannot be authorized per caller today: the AI
gateway and its secrets, MCP servers, the assistant, background jobs (prompt optimization,
LLM judges, issue detection), workspaces, demo data, and MLflow's own stubs. Their
rows exist so that a new MLflow route is never silently forwarded. The probes the UI makes for
some of them on every page are answered by the gateway (routing/tables/ui.py).
"""

from __future__ import annotations

from gateway.routing.build import ajax, api, ref, refused, rows
from gateway.routing.model import NONE, Route
from store.vocabulary import WORKSPACE

EVERYONE = ref(WORKSPACE)

AI_GATEWAY = "the AI gateway (LLM endpoints, secrets, budgets, guardrails) is not offered"
MCP = "the MCP server registry is not offered"
ASSISTANT = "the assistant is not offered"
JOBS = "background jobs are not offered"
WORKSPACES = "workspaces are not offered: authorization is per experiment and model"
DEMO = "demo data is not offered"
STUB = "not implemented by MLflow"
BUILD = "use /static-files for the UI's assets"


def _server_and_ui() -> list[Route]:
    f = "server"
    return [
        *rows("GET", "/health", f, "Health", EVERYONE, params=NONE),
        *rows("GET", "/version", f, "GetVersion", EVERYONE, params=NONE),
        *rows("GET", api(3, "/mlflow/server-info"), f, "GetServerInfo", EVERYONE, params=NONE),
        # without credentials unless browser sign-in is on: then the page sends one to sign in
        *rows("GET", "/", "ui", "ServeUI", EVERYONE, params=NONE, anonymous=True),
        *rows(
            "GET",
            "/static-files/{path:path}",
            "ui",
            "ServeStaticFile",
            EVERYONE,
            params=NONE,
            anonymous=True,
        ),
        # read-only queries; each field must be checked by the "graphql" response filter
        *rows("GET", "/graphql", "graphql", "GraphQL", EVERYONE, params=NONE, filter="graphql"),
        *rows("POST", "/graphql", "graphql", "GraphQL", EVERYONE, params=NONE, filter="graphql"),
    ]


def _ai_gateway() -> list[Route]:
    g = "/mlflow/gateway"
    config = [
        ("POST", "budgets/create"),
        ("POST", "budgets/update"),
        ("DELETE", "budgets/delete"),
        ("GET", "budgets/get"),
        ("GET", "budgets/list"),
        ("GET", "budgets/windows"),
        ("POST", "endpoints/bindings/create"),
        ("DELETE", "endpoints/bindings/delete"),
        ("GET", "endpoints/bindings/list"),
        ("POST", "endpoints/create"),
        ("DELETE", "endpoints/delete"),
        ("DELETE", "endpoints/delete-tag"),
        ("GET", "endpoints/get"),
        ("GET", "endpoints/list"),
        ("POST", "endpoints/models/attach"),
        ("POST", "endpoints/models/detach"),
        ("POST", "endpoints/set-tag"),
        ("POST", "endpoints/update"),
        ("POST", "guardrails/add-to-endpoint"),
        ("POST", "guardrails/create"),
        ("DELETE", "guardrails/delete"),
        ("GET", "guardrails/get"),
        ("GET", "guardrails/list"),
        ("GET", "guardrails/list-for-endpoint"),
        ("DELETE", "guardrails/remove-from-endpoint"),
        ("PATCH", "guardrails/update-config"),
        ("POST", "model-definitions/create"),
        ("DELETE", "model-definitions/delete"),
        ("GET", "model-definitions/get"),
        ("GET", "model-definitions/list"),
        ("POST", "model-definitions/update"),
        ("POST", "secrets/create"),
        ("DELETE", "secrets/delete"),
        ("GET", "secrets/get"),
        ("GET", "secrets/list"),
        ("POST", "secrets/update"),
    ]
    ui_only = [
        ("GET", "supported-providers"),
        ("GET", "supported-models"),
        ("GET", "provider-config"),
        ("GET", "secrets/config"),
    ]
    invocation = [
        ("POST", "/gateway/{endpoint_name}/mlflow/invocations"),
        ("POST", "/gateway/mlflow/v1/chat/completions"),
        ("GET", "/gateway/mlflow/v1/models"),
        ("POST", "/gateway/openai/v1/chat/completions"),
        ("POST", "/gateway/openai/v1/embeddings"),
        ("POST", "/gateway/openai/v1/responses"),
        ("POST", "/gateway/openai/v1/responses/compact"),
        ("POST", "/gateway/anthropic/v1/messages"),
        ("POST", "/gateway/typesafe/v1/systemone"),
        ("POST", "/gateway/gemini/v1beta/models/{endpoint_name}:generateContent"),
        ("POST", "/gateway/gemini/v1beta/models/{endpoint_name}:streamGenerateContent"),
        ("POST", "/gateway/proxy/{endpoint_name}/{path:path}"),
    ]
    f = "ai-gateway"
    out: list[Route] = []
    for method, tail in config:
        out += refused(method, api(3, f"{g}/{tail}"), f, AI_GATEWAY)
    for method, tail in ui_only:
        out += refused(method, ajax(3, f"{g}/{tail}"), f, AI_GATEWAY)
    for method, path in invocation:
        out += refused(method, path, f, AI_GATEWAY)
    return out


def _mcp() -> list[Route]:
    m = "/mlflow/mcp-servers"
    routes = [
        ("POST", ""),
        ("GET", "/endpoints"),
        ("GET", "/{name:path}"),
        ("PATCH", "/{name:path}"),
        ("DELETE", "/{name:path}"),
        ("POST", "/{name:path}/aliases"),
        ("GET", "/{name:path}/aliases/{alias:path}"),
        ("DELETE", "/{name:path}/aliases/{alias:path}"),
        ("POST", "/{name:path}/tags"),
        ("DELETE", "/{name:path}/tags/{key:path}"),
        ("GET", "/{name:path}/endpoints"),
        ("POST", "/{name:path}/endpoints"),
        ("GET", "/{name:path}/endpoints/{endpoint_id}"),
        ("PATCH", "/{name:path}/endpoints/{endpoint_id}"),
        ("DELETE", "/{name:path}/endpoints/{endpoint_id}"),
        ("GET", "/{name:path}/versions"),
        ("POST", "/{name:path}/versions"),
        ("GET", "/{name:path}/versions/{version:path}"),
        ("PATCH", "/{name:path}/versions/{version:path}"),
        ("DELETE", "/{name:path}/versions/{version:path}"),
        ("POST", "/{name:path}/versions/{version:path}/tags"),
        ("DELETE", "/{name:path}/versions/{version:path}/tags/{key:path}"),
    ]
    out: list[Route] = []
    for method, tail in routes:
        out += refused(method, api(3, f"{m}{tail}"), "mcp", MCP)
    return out


def _assistant() -> list[Route]:
    a = "/mlflow/assistant"
    routes = [
        ("POST", "/message"),
        ("GET", "/sessions/{session_id}/stream"),
        ("PATCH", "/sessions/{session_id}"),
        ("POST", "/sessions/{session_id}/permission"),
        ("POST", "/sessions/{session_id}/tool-result"),
        ("GET", "/providers/{provider}/health"),
        ("PUT", "/config"),
        ("POST", "/skills/install"),
        ("GET", "/providers/{provider}/models"),
    ]
    out: list[Route] = []
    for method, tail in routes:
        out += refused(method, ajax(3, f"{a}{tail}"), "assistant", ASSISTANT)
    return out


def _jobs_and_llm_calls() -> list[Route]:
    f = "jobs"
    out = [
        *refused("GET", "/ajax-api/3.0/jobs/{job_id}", f, JOBS),
        *refused("POST", "/ajax-api/3.0/jobs/", f, JOBS),
        *refused("PATCH", "/ajax-api/3.0/jobs/cancel/{job_id}", f, JOBS),
        *refused("POST", "/ajax-api/3.0/jobs/search", f, JOBS),
        *refused("GET", ajax(3, "/mlflow/jobs/{job_id}"), f, JOBS),
        *refused("PATCH", ajax(3, "/mlflow/jobs/cancel/{job_id}"), f, JOBS),
        *refused("POST", ajax(3, "/mlflow/scorer/invoke"), f, JOBS),
        *refused("POST", ajax(3, "/mlflow/genai/evaluate/invoke"), f, JOBS),
        *refused("POST", ajax(3, "/mlflow/issues/invoke"), f, JOBS),
    ]
    p = "/mlflow/prompt-optimization/jobs"
    for method, tail in [
        ("POST", ""),
        ("GET", "/search"),
        ("POST", "/search"),
        ("GET", "/{job_id}"),
        ("DELETE", "/{job_id}"),
        ("POST", "/{job_id}/cancel"),
    ]:
        out += refused(method, api(3, f"{p}{tail}"), f, JOBS)
    return out


def _workspaces_and_misc() -> list[Route]:
    out: list[Route] = []
    for method, tail in [("GET", ""), ("POST", "")] + [
        (m, "/{workspace_name}") for m in ("GET", "PATCH", "DELETE")
    ]:
        out += refused(method, api(3, f"/mlflow/workspaces{tail}"), "workspaces", WORKSPACES)
    out += refused("POST", ajax(3, "/mlflow/demo/generate"), "demo", DEMO)
    out += refused("POST", ajax(3, "/mlflow/demo/delete"), "demo", DEMO)
    out += refused("GET", "/build/{filename:path}", "ui", BUILD)
    out += refused("GET", api(2, "/mlflow/get-online-trace-details"), "stubs", STUB)
    out += refused("GET", api(2, "/mlflow/unified-traces"), "stubs", STUB)
    out += refused(
        "POST",
        (
            "/api/2.0mlflow/experiments/search-datasets",
            "/ajax-api/2.0mlflow/experiments/search-datasets",
        ),
        "stubs",
        STUB,
    )
    return out


def other_routes() -> list[Route]:
    return [
        *_server_and_ui(),
        *_ai_gateway(),
        *_mcp(),
        *_assistant(),
        *_jobs_and_llm_calls(),
        *_workspaces_and_misc(),
    ]
