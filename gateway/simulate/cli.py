"""The command line: `tools/simulate COMMAND ...`, also `cedarflow simulate COMMAND ...`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from gateway.simulate.commands import (
    run_check,
    run_diff,
    run_matrix,
    run_replay,
    run_request,
    run_test,
)
from gateway.simulate.inputs import (
    EXIT_FINDING,
    EXIT_INPUT,
    EXIT_OK,
    EXIT_POLICY,
    EXIT_USAGE,
)
from gateway.simulate.matrix import FORMATS

EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}  ALLOW; every test case passed; no decision differs
  {EXIT_FINDING}  DENY (a request refused, or a search answered empty); a test case failed;
     decisions differ; a replayed decision would change
  {EXIT_USAGE}  the command line is wrong
  {EXIT_POLICY}  a policy set does not load: each error is printed as FILE:LINE:COLUMN: message
  {EXIT_INPUT}  a bindings, test or audit file, the table or a git revision cannot be read
     (errors printed as FILE:LINE:COLUMN: message)
"""

DESCRIPTION = """\
What would the gateway decide? Uses the gateway's own route table, policy loading,
entity building and decision code, with role bindings from a file or the live table."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(
        prog="simulate",
        description=DESCRIPTION,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_commands(parser)
    args = parser.parse_args(argv)
    return args.run(args)


def add_simulate_command(subparsers) -> argparse.ArgumentParser:
    """Register `simulate` on another command's subparsers (`cedarflow simulate`)."""
    parser = subparsers.add_parser(
        "simulate",
        help="see what the policies decide: check, request, matrix, test, diff, replay",
        description=DESCRIPTION,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_commands(parser)
    parser.set_defaults(command="simulate")
    return parser


def _add_commands(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(run=lambda args: _no_command(parser))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_text: str, run: Callable) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text[:1].upper() + help_text[1:] + ".",
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(run=run)
        return sub

    check = command("check", "decide one action on one resource, and say why", run_check)
    _principal(check)
    check.add_argument("--action", required=True, help="an MLflow call name, e.g. LogMetric")
    check.add_argument(
        "--resource",
        required=True,
        metavar="KIND:ID",
        help="experiment:ID, model:NAME, run:ID, trace:ID, logged_model:ID, dataset:ID, "
        "scorer:ID, label_schema:ID, issue:ID, review_queue:ID or workspace",
    )
    check.add_argument("--version", help="model version (its stage is read from the bindings)")
    check.add_argument("--stage", help="model version stage, e.g. Production")
    _policies(check)
    _bindings(check)

    request = command("request", "route, parse, resolve and decide one HTTP request", run_request)
    _principal(request)
    request.add_argument("method", metavar="METHOD")
    request.add_argument(
        "path",
        metavar="PATH",
        help="path with its query, e.g. '/api/2.0/mlflow/runs/get?run_id=abc'",
    )
    request.add_argument(
        "body",
        metavar="BODY",
        nargs="?",
        default="",
        help="JSON body, or @FILE to read it from a file",
    )
    request.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a request header (repeatable), e.g. x-mlflow-experiment-id:7",
    )
    _policies(request)
    _bindings(request)

    matrix = command("matrix", "print the roles x calls table of a policy set", run_matrix)
    _policies(matrix)
    matrix.add_argument("--format", choices=FORMATS, default="text")

    test = command("test", "run policy test files (expected decisions)", run_test)
    test.add_argument("files", metavar="FILE", nargs="+", type=Path)
    test.add_argument(
        "--policies",
        type=Path,
        help="policy folder (default: the file's `policies:`, else the nearest folder above "
        "the file holding schema.cedarschema)",
    )
    _admin_groups(test)
    test.add_argument("-q", "--quiet", action="store_true", help="print failures only")

    diff = command(
        "diff", "list every (role, action, resource type) whose decision changes", run_diff
    )
    diff.add_argument(
        "--base",
        required=True,
        metavar="DIR|GIT_REV",
        help="the policies in force: a folder or a git revision (e.g. HEAD)",
    )
    diff.add_argument(
        "--head",
        type=Path,
        default=None,
        metavar="DIR",
        help="the edited policies (default: the policy folder)",
    )
    _admin_groups(diff)

    replay = command("replay", "decide recorded audit lines again with other policies", run_replay)
    replay.add_argument("audit", metavar="AUDIT.jsonl", type=Path)
    _policies(replay)
    _bindings(replay)


def _principal(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--user", required=True, help="the caller's subject (or user name with --table)"
    )
    parser.add_argument("--groups", default="", help="comma-separated groups")


def _policies(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policies",
        type=Path,
        default=None,
        metavar="DIR",
        help="policy folder (default: ./policies, else the checkout's policies)",
    )
    _admin_groups(parser)


def _admin_groups(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--admin-groups",
        default=os.environ.get("CEDARFLOW_ADMIN_GROUPS", "admins"),
        help="comma-separated admin groups (default $CEDARFLOW_ADMIN_GROUPS or admins)",
    )


def _bindings(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--bindings", metavar="FILE", help="role bindings (YAML or JSON)")
    source.add_argument(
        "--table", metavar="dynamodb://...", help="read role bindings from the deployment's table"
    )


def _no_command(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
