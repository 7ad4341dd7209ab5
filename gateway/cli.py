"""The `cedarflow` command. Each subcommand registers from its package: `up` (gateway/stack/),
`token` (gateway/devidp/), `login`, `grant`, `revoke`, `permissions` (gateway/client/) and
`simulate` (gateway/simulate/)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from gateway.client.login_command import add_login_command
from gateway.client.permissions_cli import add_permission_commands
from gateway.devidp.command import add_token_command
from gateway.simulate.cli import add_simulate_command
from gateway.stack.command import add_up_command


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

    add_up_command(commands)
    add_login_command(commands)
    add_token_command(commands)
    add_simulate_command(commands)
    add_permission_commands(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
