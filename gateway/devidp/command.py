"""`cedarflow token`: a token from the dev identity provider of the stack running in a folder."""

from __future__ import annotations

import argparse
import sys

from gateway.devidp.provider import DevIdentityProvider
from gateway.stack.datadir import DataDir, add_data_dir
from gateway.stack.processes import is_alive


def add_token_command(commands) -> argparse.ArgumentParser:
    """Add `token` to the `cedarflow` command's subparsers."""
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
    add_data_dir(token)

    return token


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

    provider = DevIdentityProvider(data.devidp, info["issuer"])
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    token = provider.mint(
        args.user or args.machine, groups, machine_client_id=args.machine, ttl=args.ttl
    )
    print(token)
    return 0
