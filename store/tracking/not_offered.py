"""The public methods of MLflow's SQL tracking store that this store does not offer, by feature.

Each answers MLflow's NOT_IMPLEMENTED (HTTP 501) naming the call (store/unsupported.py), except
the SQL-store internals, which MLflow's server never calls through its store interface.
`tests/store/test_feature_coverage.py` checks this table against MLflow's SqlAlchemyStore and
against the table in store/README.md (rendered by `readme_rows`), so neither can go stale.
"""

from __future__ import annotations

TRACKING_NOT_OFFERED: dict[str, tuple[str, ...]] = {
    "AI gateway: secrets, endpoints, model definitions, guardrails, budgets": (
        "add_guardrail_to_endpoint",
        "attach_model_to_endpoint",
        "create_budget_policy",
        "create_endpoint_binding",
        "create_gateway_endpoint",
        "create_gateway_guardrail",
        "create_gateway_model_definition",
        "create_gateway_secret",
        "delete_budget_policy",
        "delete_endpoint_binding",
        "delete_gateway_endpoint",
        "delete_gateway_endpoint_tag",
        "delete_gateway_guardrail",
        "delete_gateway_model_definition",
        "delete_gateway_secret",
        "detach_model_from_endpoint",
        "get_budget_policy",
        "get_gateway_endpoint",
        "get_gateway_guardrail",
        "get_gateway_model_definition",
        "get_secret_info",
        "list_budget_policies",
        "list_endpoint_bindings",
        "list_endpoint_guardrail_configs",
        "list_gateway_endpoints",
        "list_gateway_guardrails",
        "list_gateway_model_definitions",
        "list_secret_infos",
        "remove_guardrail_from_endpoint",
        "set_gateway_endpoint_tag",
        "sum_gateway_trace_cost",
        "update_budget_policy",
        "update_endpoint_guardrail_config",
        "update_gateway_endpoint",
        "update_gateway_model_definition",
        "update_gateway_secret",
    ),
    "MCP server registry": (
        "create_mcp_access_endpoint",
        "create_mcp_server",
        "create_mcp_server_version",
        "delete_mcp_access_endpoint",
        "delete_mcp_server",
        "delete_mcp_server_alias",
        "delete_mcp_server_tag",
        "delete_mcp_server_version",
        "delete_mcp_server_version_tag",
        "get_latest_mcp_server_version",
        "get_mcp_access_endpoint",
        "get_mcp_server",
        "get_mcp_server_version",
        "get_mcp_server_version_by_alias",
        "get_mcp_server_versions_for_trace",
        "link_mcp_server_versions_to_trace",
        "search_mcp_access_endpoints",
        "search_mcp_server_versions",
        "search_mcp_servers",
        "set_mcp_server_alias",
        "set_mcp_server_tag",
        "set_mcp_server_version_tag",
        "update_mcp_access_endpoint",
        "update_mcp_server",
        "update_mcp_server_version",
    ),
    "MLflow 2 trace calls (`/api/2.0/mlflow/traces`)": (
        "deprecated_end_trace_v2",
        "deprecated_start_trace_v2",
    ),
    "SQL-store internals (not part of MLflow's store interface)": (
        "sanitize_metric_value",
        "search_entities_by_destination",
        "search_entities_by_source",
    ),
    "online scoring configurations": (
        "get_active_online_scorers",
        "resolve_endpoint_in_scorer",
        "upsert_online_scoring_config",
    ),
    "trace archival, filter correlation, completed sessions, online trace details": (
        "archive_traces",
        "calculate_trace_filter_correlation",
        "find_completed_sessions",
        "get_online_trace_details",
    ),
}


def readme_rows() -> list[str]:
    """The rows of store/README.md's table of methods not offered."""
    rows = ["| feature | methods |", "|---|---|"]
    for feature, methods in sorted(TRACKING_NOT_OFFERED.items()):
        rows.append(f"| {feature} | {', '.join(f'`{m}`' for m in methods)} |")
    return rows
