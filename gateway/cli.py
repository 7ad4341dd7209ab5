"""The `cedarflow` command: `up` runs the local stack, `token` prints a dev token, `login` signs
a user in to a gateway for the MLflow client."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from gateway.stack.datadir import DEFAULT_DATA_DIR, DataDir
from gateway.stack.processes import is_alive

# The default roles that ship beside the packages (`policies/` at the top of the checkout).
SHIPPED_POLICIES = Path(__file__).resolve().parent.parent / "policies"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return args.run(args)


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other error of this command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cedarflow", description="MLflow behind a Cedar-policy gateway, on DynamoDB."
    )
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)

    up = commands.add_parser(
        "up",
        help="run the whole stack on this machine (local DynamoDB, MLflow, gateway)",
        description="Run the local DynamoDB, the MLflow handler tier and the gateway in the "
        "foreground. Ctrl-C or SIGTERM stops everything; data stays in --data-dir.",
    )
    up.set_defaults(command="up", run=_run_up)
    _add_data_dir(up)
    up.add_argument(
        "--host",
        default="127.0.0.1",
        help="gateway address (default 127.0.0.1); any address but loopback needs an --issuer",
    )
    up.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    up.add_argument(
        "--issuer",
        action=_IssuerAction,
        metavar="URL",
        help="trust tokens from this OIDC/Cognito issuer instead of the dev identity provider "
        "(repeatable; each --issuer takes the --jwks-url and --client-id options that follow it)",
    )
    up.add_argument(
        "--jwks-url",
        action=_IssuerAction,
        metavar="URL",
        help="JWKS of the preceding --issuer (default ISSUER/.well-known/jwks.json)",
    )
    up.add_argument(
        "--client-id",
        action=_IssuerAction,
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
        "--no-dev-idp",
        dest="dev_idp",
        action="store_false",
        help="no dev identity provider: it is already off with any --issuer, and without one "
        "nobody could sign in (refused)",
    )

    from gateway.client.login_command import add_login_command

    add_login_command(commands)

    token = commands.add_parser(
        "token",
        help="print an access token from the running stack's dev identity provider",
        description="Print a Cognito-shaped access token signed by the dev identity provider "
        "of the stack running in --data-dir.",
    )
    token.set_defaults(command="token", run=_run_token)
    token.add_argument("--user", help="user name (required unless --machine is given)")
    token.add_argument("--groups", default="", help="comma-separated groups, e.g. vision,admins")
    token.add_argument("--machine", metavar="CLIENT_ID", help="a machine token for this client")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    _add_data_dir(token)

    from gateway.simulate.cli import add_simulate_command

    add_simulate_command(commands)

    from gateway.client.permissions_cli import add_permission_commands

    add_permission_commands(commands)
    return parser


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"where the stack keeps its data (default ./{DEFAULT_DATA_DIR})",
    )


class _IssuerAction(argparse.Action):
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


def _issuers(args: argparse.Namespace, parser_error) -> tuple:
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


def _service_client(value: str, parser_error):
    from gateway.config import ServiceClient

    client_id, _, rest = value.partition("=")
    name, _, groups = rest.partition(":")
    if not client_id or not name:
        parser_error(f"--service-client {value!r}: expected ID=NAME[:GROUPS]")
    return ServiceClient(
        client_id=client_id, name=name, groups=tuple(g for g in groups.split(",") if g)
    )


def _run_up(args: argparse.Namespace) -> int:
    from gateway.stack.supervisor import Stack, StackConfig

    def error(message: str) -> NoReturn:
        print(f"cedarflow up: {message}", file=sys.stderr)
        raise SystemExit(2)

    if not 0 <= args.port <= 65535:
        error(f"--port {args.port} is not a port number")
    if not args.policies_dir.is_dir():
        error(f"--policies {args.policies_dir} is not a directory")
    config = StackConfig(
        body_limits=_body_limits(args, error),
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        issuers=_issuers(args, error),
        dev_idp=args.dev_idp,
        service_clients=tuple(_service_client(v, error) for v in args.service_clients),
        policies_dir=args.policies_dir,
    )
    return Stack(config).run()


def _body_limits(args: argparse.Namespace, parser_error):
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


def _run_token(args: argparse.Namespace) -> int:
    def fail(message: str) -> int:
        print(f"cedarflow token: {message}", file=sys.stderr)
        return 1

    if not args.user and not args.machine:
        return fail("--user NAME is required (or --machine CLIENT_ID)")
    if args.ttl <= 0:
        return fail("--ttl must be a positive number of seconds")
    data = DataDir.at(args.data_dir)
    info = data.read_stack_info()
    if info is None or not is_alive(int(info.get("pid", 0))):
        return fail(f"no Cedarflow stack is running in {data.root} (start it with `cedarflow up`)")
    if not info.get("dev_idp"):
        issuers = ", ".join(info.get("issuers") or []) or "an outside issuer"
        return fail(
            f"the stack in {data.root} runs without the dev identity provider: it trusts "
            f"{issuers} (--issuer); get a token from that issuer"
        )

    from gateway.devidp.provider import DevIdentityProvider

    provider = DevIdentityProvider(data.devidp, info["issuer"])
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    token = provider.mint(
        args.user or args.machine, groups, machine_client_id=args.machine, ttl=args.ttl
    )
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
