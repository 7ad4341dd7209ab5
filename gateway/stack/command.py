"""`cedarflow up`: its options, and the stack they start (gateway/stack/local.py)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import NoReturn

from gateway.authz.policies import PACKAGED_POLICIES
from gateway.stack.datadir import add_data_dir

# The default roles that ship inside the package (`policies/` at the top of a checkout).
SHIPPED_POLICIES = PACKAGED_POLICIES


def add_up_command(commands) -> argparse.ArgumentParser:
    """Add `up` to the `cedarflow` command's subparsers."""
    up = commands.add_parser(
        "up",
        help="run the whole stack on this machine (local DynamoDB, MLflow, gateway)",
        description="Run the local DynamoDB, the MLflow handler tier and the gateway in the "
        "foreground. Ctrl-C or SIGTERM stops everything; data stays in --data-dir.",
    )
    up.set_defaults(command="up", run=_run_up)
    add_data_dir(up)
    up.add_argument(
        "--host",
        default="127.0.0.1",
        help="gateway address (default 127.0.0.1); any address but loopback needs an --issuer",
    )
    up.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    up.add_argument(
        "--issuer",
        action=IssuerAction,
        metavar="URL",
        help="trust tokens from this OIDC/Cognito issuer instead of the dev identity provider "
        "(repeatable; each --issuer takes the --jwks-url and --client-id options that follow it)",
    )
    up.add_argument(
        "--jwks-url",
        action=IssuerAction,
        metavar="URL",
        help="JWKS of the preceding --issuer (default ISSUER/.well-known/jwks.json)",
    )
    up.add_argument(
        "--client-id",
        action=IssuerAction,
        metavar="ID",
        help="app client id accepted for the preceding --issuer (repeatable)",
    )
    up.add_argument(
        "--service-client",
        dest="service_clients",
        action="append",
        default=[],
        metavar="ID=NAME[:GROUPS]",
        help="accept machine tokens of app client ID as service NAME, in comma-separated "
        "GROUPS (repeatable)",
    )
    up.add_argument(
        "--policies",
        dest="policies_dir",
        type=Path,
        metavar="DIR",
        default=SHIPPED_POLICIES,
        help="decide every call with the Cedar policies in DIR (default: the shipped "
        "policies/); audit lines go to DATA/logs/audit.jsonl",
    )
    up.add_argument(
        "--max-body-mb",
        type=float,
        default=None,
        metavar="MB",
        help="largest request body of an MLflow JSON call or the permissions API, in MiB "
        "(default 4); bigger bodies get 413",
    )
    up.add_argument(
        "--max-large-body-mb",
        type=float,
        default=None,
        metavar="MB",
        help="largest request body of LogBatch, LogInputs, traces, OTLP spans, GraphQL and "
        "dataset records, in MiB (default 32); artifact uploads have no limit",
    )
    up.add_argument(
        "--webhook-allow-network",
        dest="webhook_networks",
        action="append",
        default=[],
        metavar="CIDR",
        help="deliver registry webhooks to addresses in CIDR too (repeatable); loopback, "
        "link-local and private addresses are refused otherwise, and plain http is accepted "
        "only inside these networks",
    )
    up.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help="handler tier worker processes (default 2; each holds MLflow's server, ~250 MB)",
    )
    up.add_argument(
        "--no-dev-idp",
        dest="dev_idp",
        action="store_false",
        help="no dev identity provider: it is already off with any --issuer, and without one "
        "nobody could sign in (refused)",
    )

    return up


class IssuerAction(argparse.Action):
    """Collects --issuer groups in order: --jwks-url/--client-id belong to the last --issuer."""

    def __call__(self, parser, namespace, value, option_string=None) -> None:
        groups = list(getattr(namespace, "issuer_groups", None) or [])
        if self.dest == "issuer":
            groups.append({"issuer": value.rstrip("/"), "jwks_url": None, "client_ids": []})
        elif not groups:
            parser.error(f"{option_string} must follow an --issuer")
        elif self.dest == "jwks_url":
            groups[-1]["jwks_url"] = value
        else:
            groups[-1]["client_ids"].extend(v for v in value.split(",") if v)
        namespace.issuer_groups = groups


def issuers_from(args: argparse.Namespace, parser_error) -> tuple:
    from gateway.config import IssuerConfig

    issuers = []
    for group in getattr(args, "issuer_groups", None) or []:
        if not group["client_ids"]:
            parser_error(f"--issuer {group['issuer']} needs at least one --client-id")
        issuers.append(
            IssuerConfig(
                issuer=group["issuer"],
                jwks_url=group["jwks_url"] or f"{group['issuer']}/.well-known/jwks.json",
                client_ids=tuple(group["client_ids"]),
            )
        )
    return tuple(issuers)


def service_client(value: str, parser_error):
    from gateway.config import ServiceClient

    client_id, _, rest = value.partition("=")
    name, _, groups = rest.partition(":")
    if not client_id or not name:
        parser_error(f"--service-client {value!r}: expected ID=NAME[:GROUPS]")
    return ServiceClient(
        client_id=client_id, name=name, groups=tuple(g for g in groups.split(",") if g)
    )


def _run_up(args: argparse.Namespace) -> int:
    from gateway.stack.local import Stack, StackConfig

    def error(message: str) -> NoReturn:
        print(f"cedarflow up: {message}", file=sys.stderr)
        raise SystemExit(2)

    if args.workers < 1:
        error("--workers must be at least 1")

    if not 0 <= args.port <= 65535:
        error(f"--port {args.port} is not a port number")
    if not args.policies_dir.is_dir():
        error(f"--policies {args.policies_dir} is not a directory")
    config = StackConfig(
        body_limits=body_limits_from(args, error),
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        issuers=issuers_from(args, error),
        dev_idp=args.dev_idp,
        service_clients=tuple(service_client(v, error) for v in args.service_clients),
        policies_dir=args.policies_dir,
        webhook_networks=webhook_networks_from(args.webhook_networks, error),
        workers=args.workers,
    )
    return Stack(config).run()


def webhook_networks_from(values: list[str], parser_error) -> tuple[str, ...]:
    """The CIDRs of --webhook-allow-network, normalized; a malformed one exits with a message."""
    from store.webhooks.networks import parse_networks

    try:
        return tuple(str(n) for n in parse_networks(values))
    except ValueError as exc:
        parser_error(f"--webhook-allow-network: {exc}")


def body_limits_from(args: argparse.Namespace, parser_error):
    from gateway.config import MIB, BodyLimits

    limits = BodyLimits()
    for flag, value, name in (
        ("--max-body-mb", args.max_body_mb, "json"),
        ("--max-large-body-mb", args.max_large_body_mb, "large"),
    ):
        if value is None:
            continue
        if not value > 0:
            parser_error(f"{flag} must be a positive number of MiB")
        limits = dataclasses.replace(limits, **{name: int(value * MIB)})
    return limits
