"""`cedarflow serve`: its options, each also read from CEDARFLOW_<FLAG> in the environment (a
flag given on the command line wins), and the service they start (gateway/stack/serve.py).

Lists in the environment are comma-separated. Where an entry holds commas itself, entries are
separated by `;`: CEDARFLOW_SERVICE_CLIENT="ID=NAME:GROUP1,GROUP2;ID2=NAME2", and with several
issuers CEDARFLOW_CLIENT_ID="ids,of,issuer1;ids,of,issuer2" (one issuer: plain commas).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from gateway.authz.policies import PACKAGED_POLICIES
from gateway.stack.command import (
    IssuerAction,
    body_limits_from,
    issuers_from,
    service_client,
    webhook_networks_from,
)

ENV_PREFIX = "CEDARFLOW_"
PRINCIPAL_CLAIMS = ("sub", "username", "email")


def environment_variable(flag: str) -> str:
    """CEDARFLOW_<FLAG>: `--jwks-url` is CEDARFLOW_JWKS_URL."""
    return ENV_PREFIX + flag.removeprefix("--").upper().replace("-", "_")


def add_serve_command(commands) -> argparse.ArgumentParser:
    """Add `serve` to the `cedarflow` command's subparsers."""
    serve = commands.add_parser(
        "serve",
        help="run the gateway and the MLflow handler tier in production (no local parts)",
        description="Run the gateway on --host/--port and MLflow's handler tier on a private "
        "loopback port, on an existing DynamoDB table and artifact store, trusting the given "
        "identity providers. Every option is also read from CEDARFLOW_<OPTION> (e.g. "
        "CEDARFLOW_TABLE); secrets come from the environment only: CEDARFLOW_IDENTITY_SECRET, "
        "CEDARFLOW_SESSION_SECRET (required) and CEDARFLOW_UI_CLIENT_SECRET.",
    )
    serve.set_defaults(command="serve", run=_run_serve)
    define_serve_options(serve)
    return serve


def define_serve_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--table",
        metavar="URI",
        help="the DynamoDB table (required): dynamodb://REGION/TABLE, "
        "dynamodb:///TABLE (boto3's defaults) or dynamodb://HOST:PORT/TABLE",
    )
    add(
        "--artifacts",
        metavar="URI",
        help="where artifacts are kept (required): "
        "s3://BUCKET/PREFIX or a folder; clients reach them as mlflow-artifacts:/",
    )
    add(
        "--issuer",
        action=IssuerAction,
        metavar="URL",
        help="trust tokens of this OIDC/Cognito "
        "issuer (repeatable; the --jwks-url and --client-id that follow belong to it)",
    )
    add(
        "--jwks-url",
        action=IssuerAction,
        metavar="URL",
        help="JWKS of the preceding --issuer (default ISSUER/.well-known/jwks.json)",
    )
    add(
        "--client-id",
        action=IssuerAction,
        metavar="ID",
        help="app client ids accepted for the preceding --issuer (repeatable, comma-separated)",
    )
    add(
        "--service-client",
        dest="service_clients",
        action="append",
        metavar="ID=NAME[:GROUPS]",
        help="machine tokens of app client ID act as service NAME in comma-separated GROUPS "
        "(repeatable)",
    )
    add(
        "--public-url",
        metavar="URL",
        help="the address users reach (the load balancer's); needed for browser sign-in",
    )
    add(
        "--ui-client-id",
        metavar="ID",
        help="app client of the first issuer that signs "
        "browsers in (authorization code + PKCE; secret from CEDARFLOW_UI_CLIENT_SECRET)",
    )
    add("--cli-client-id", metavar="ID", help="public app client for `cedarflow login`")
    add(
        "--cli-loopback-port",
        type=int,
        metavar="PORT",
        help="the loopback port registered as the CLI client's callback (default 47318)",
    )
    add(
        "--policies",
        dest="policies_dir",
        type=Path,
        metavar="DIR",
        help="the Cedar policy folder (default: the policies shipped in the package)",
    )
    add(
        "--admin-group",
        dest="admin_groups",
        action="append",
        metavar="NAME",
        help="members of this group may do everything (repeatable; default admins)",
    )
    add(
        "--principal-claim",
        choices=PRINCIPAL_CLAIMS,
        help="the token claim that names a user "
        "in role bindings (default sub; username or email survive a rebuilt user pool)",
    )
    add("--audit-log", metavar="PATH", help="audit JSON lines: a file, or - for stdout (default)")
    add("--host", help="gateway address (default 0.0.0.0)")
    add("--port", type=int, help="gateway port (default 8080)")
    add("--workers", type=int, metavar="N", help="handler tier worker processes (default 2)")
    add(
        "--drain-seconds",
        type=float,
        metavar="S",
        help="on SIGTERM, how long calls in flight may take to finish (default 30)",
    )
    add(
        "--max-body-mb",
        type=float,
        metavar="MB",
        help="largest request body of an MLflow JSON call, in MiB (default 4)",
    )
    add(
        "--max-large-body-mb",
        type=float,
        metavar="MB",
        help="largest body of LogBatch, traces, GraphQL and similar calls, in MiB (default 32)",
    )
    add(
        "--webhook-allow-network",
        dest="webhook_networks",
        action="append",
        metavar="CIDR",
        help="deliver registry webhooks to addresses in CIDR too (repeatable); loopback, "
        "link-local and private addresses are refused otherwise, and plain http is accepted "
        "only inside these networks",
    )


def serve_flags() -> tuple[str, ...]:
    """Every flag of `cedarflow serve` without its dashes (each is also CEDARFLOW_<FLAG>)."""
    parser = argparse.ArgumentParser(add_help=False)
    define_serve_options(parser)
    return tuple(
        option.removeprefix("--") for action in parser._actions for option in action.option_strings
    )


_DEFAULTS = {
    "host": "0.0.0.0",
    "port": 8080,
    "workers": 2,
    "drain_seconds": 30.0,
    "cli_loopback_port": 47318,
    "principal_claim": "sub",
    "audit_log": "-",
}


def _with_environment(
    args: argparse.Namespace, environ: Mapping[str, str], error
) -> argparse.Namespace:
    """Fill each option the command line left out from CEDARFLOW_<FLAG>, then the defaults."""

    def env(flag: str) -> str | None:
        value = environ.get(environment_variable(flag), "").strip()
        return value or None

    converters = {"port": int, "workers": int, "cli_loopback_port": int, "drain_seconds": float}
    converters |= {"max_body_mb": float, "max_large_body_mb": float, "policies_dir": Path}
    simple = {
        "table": "table", "artifacts": "artifacts", "public-url": "public_url",
        "ui-client-id": "ui_client_id", "cli-client-id": "cli_client_id",
        "cli-loopback-port": "cli_loopback_port", "policies": "policies_dir",
        "principal-claim": "principal_claim", "audit-log": "audit_log", "host": "host",
        "port": "port", "workers": "workers", "drain-seconds": "drain_seconds",
        "max-body-mb": "max_body_mb", "max-large-body-mb": "max_large_body_mb",
    }  # fmt: skip
    for flag, dest in simple.items():
        if getattr(args, dest, None) is None and env(flag) is not None:
            try:
                setattr(args, dest, converters.get(dest, str)(env(flag)))
            except ValueError:
                error(f"{environment_variable(flag)}={env(flag)!r} is not a number")
    for dest, default in _DEFAULTS.items():
        if getattr(args, dest, None) is None:
            setattr(args, dest, default)
    if args.policies_dir is None:
        args.policies_dir = PACKAGED_POLICIES
    if not args.admin_groups:
        args.admin_groups = _split(env("admin-group") or "admins", ",")
    else:
        args.admin_groups = [g for value in args.admin_groups for g in _split(value, ",")]
    if not args.service_clients:
        args.service_clients = _split(env("service-client") or "", ";")
    if not args.webhook_networks:  # CIDRs hold no separator: `;` or `,` both separate
        args.webhook_networks = _split((env("webhook-allow-network") or "").replace(";", ","), ",")
    if not getattr(args, "issuer_groups", None):
        args.issuer_groups = _issuer_groups_from(env, error)
    return args


def _issuer_groups_from(env, error) -> list[dict]:
    issuers = _split(env("issuer") or "", ",")
    jwks_urls = _split(env("jwks-url") or "", ",")
    client_groups = [_split(group, ",") for group in (env("client-id") or "").split(";")]
    client_groups = [group for group in client_groups if group]
    if jwks_urls and len(jwks_urls) != len(issuers):
        error("CEDARFLOW_JWKS_URL needs one URL per issuer of CEDARFLOW_ISSUER")
    if issuers and len(client_groups) != len(issuers):
        error("CEDARFLOW_CLIENT_ID needs one group of ids per issuer, groups separated by ';'")
    return [
        {
            "issuer": issuer.rstrip("/"),
            "jwks_url": jwks_urls[index] if jwks_urls else None,
            "client_ids": client_groups[index],
        }
        for index, issuer in enumerate(issuers)
    ]


def _split(text: str, separator: str) -> list[str]:
    return [part.strip() for part in text.split(separator) if part.strip()]


def serve_config(args: argparse.Namespace, environ: Mapping[str, str], error):
    """The ServeConfig of parsed arguments and the environment; `error` exits with a message."""
    from gateway.stack.serve import ServeConfig, with_principal_claim

    args = _with_environment(args, environ, error)
    for flag, dest in (("--table", "table"), ("--artifacts", "artifacts")):
        if not getattr(args, dest):
            error(f"{flag} is required (or {environment_variable(flag)})")
    issuers = issuers_from(args, error)
    if not issuers:
        error("give at least one --issuer with its --client-id (or CEDARFLOW_ISSUER)")
    if not 0 <= args.port <= 65535 or not 0 < args.cli_loopback_port <= 65535:
        error("--port and --cli-loopback-port take port numbers")
    if args.workers < 1:
        error("--workers must be at least 1")
    if args.drain_seconds < 0:
        error("--drain-seconds cannot be negative")
    if args.principal_claim not in PRINCIPAL_CLAIMS:
        error(f"--principal-claim must be one of {', '.join(PRINCIPAL_CLAIMS)}")
    if args.cli_client_id and not args.ui_client_id:
        error("--cli-client-id needs --ui-client-id (the sign-in endpoints come with it)")
    if args.ui_client_id and not args.public_url:
        error("--ui-client-id needs --public-url (the sign-in callback is on that address)")
    services = []
    for value in args.service_clients:
        client = service_client(value, error)
        if any("=" in group for group in client.groups):
            error(f"--service-client {value!r}: separate entries with ';' in the environment")
        services.append(client)
    return ServeConfig(
        table=args.table,
        artifacts=args.artifacts,
        issuers=with_principal_claim(issuers, args.principal_claim),
        policies_dir=args.policies_dir,
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        service_clients=tuple(services),
        ui_client_id=args.ui_client_id,
        cli_client_id=args.cli_client_id,
        cli_loopback_port=args.cli_loopback_port,
        admin_groups=tuple(args.admin_groups),
        audit_log=args.audit_log,
        workers=args.workers,
        drain_seconds=args.drain_seconds,
        body_limits=body_limits_from(args, error),
        webhook_networks=webhook_networks_from(args.webhook_networks, error),
    )


def _run_serve(args: argparse.Namespace) -> int:
    from gateway.observe.jsonlog import configure_json_logging
    from gateway.stack.serve import Service

    def error(message: str) -> NoReturn:
        print(f"cedarflow serve: {message}", file=sys.stderr)
        raise SystemExit(2)

    config = serve_config(args, os.environ, error)
    configure_json_logging()
    return Service(config, dict(os.environ)).run()
