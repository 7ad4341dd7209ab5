"""`cedarflow table create|check`: the DynamoDB table the stores need, made and verified by the
platform engineer before `cedarflow serve` runs (store/dynamo/provision.py, check.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

EXIT_OK = 0
EXIT_DIFFERS = 1  # the table is missing or not what the schema defines; or it cannot be read
EXIT_USAGE = 2

URI_HELP = (
    "the table: dynamodb://REGION/TABLE (AWS), dynamodb:///TABLE (boto3's defaults and "
    "AWS_ENDPOINT_URL_DYNAMODB) or dynamodb://HOST:PORT/TABLE (a local server)"
)


def add_table_command(commands) -> argparse.ArgumentParser:
    """Add `table` and its commands to the `cedarflow` command's subparsers."""
    table = commands.add_parser(
        "table",
        help="create, check, export or import the DynamoDB table",
        description="Administer the one DynamoDB table every store uses. AWS credentials and "
        "region come from boto3's default chain.",
    )
    table.set_defaults(command="table", run=lambda _: _usage(table))
    actions = table.add_subparsers(title="commands", metavar="COMMAND", parser_class=type(table))

    create = actions.add_parser(
        "create",
        help="create the table as the stores need it (idempotent)",
        description="Create the table with the schema's keys, indexes, on-demand billing and "
        "stream, then switch on TTL and point-in-time recovery where the server offers them. "
        "An existing table is kept: a setting it lacks altogether is switched on, a setting "
        "with another value is reported, never changed. Exit 0 when the table then matches "
        "the schema, 1 otherwise.",
    )
    create.add_argument("--table", required=True, metavar="URI", help=URI_HELP)
    create.set_defaults(run=_run_create)

    check = actions.add_parser(
        "check",
        help="compare the table with the schema the stores need",
        description="Exit 0 when the table matches the schema; else print one line per "
        "difference and exit 1. Nothing is changed.",
    )
    check.add_argument("--table", required=True, metavar="URI", help=URI_HELP)
    check.set_defaults(run=_run_check)
    return table


def _run_create(args: argparse.Namespace) -> int:
    from store.dynamo.provision import create_table

    table = _table(args, "create")
    report = _reading(table, "create", lambda: create_table(table, say=_progress))
    if report.matches:
        print(report.summary)
        return EXIT_OK
    print(f"DynamoDB table {report.table} exists and differs from the schema:")
    _print_differences(report)
    return EXIT_DIFFERS


def _run_check(args: argparse.Namespace) -> int:
    from store.dynamo.check import check_table

    table = _table(args, "check")
    report = _reading(table, "check", lambda: check_table(table))
    if report.matches or report.missing:
        print(report.summary)
    else:
        _print_differences(report)
    return EXIT_OK if report.matches else EXIT_DIFFERS


def _print_differences(report) -> None:
    for difference in report.differences:
        print(difference)


def _table(args: argparse.Namespace, command: str):
    from store.dynamo.table import DynamoTable
    from store.dynamo.uri import InvalidStoreUri, parse_dynamo_uri

    try:
        return DynamoTable(parse_dynamo_uri(args.table))
    except InvalidStoreUri as exc:
        _fail(command, f"--table: {exc}", EXIT_USAGE)


def _reading(table, command: str, work: Callable):
    """Run `work`, turning what boto3 raises (credentials, access, endpoint) into one line."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return work()
    except (BotoCoreError, ClientError, TimeoutError) as exc:
        _fail(command, f"DynamoDB table {table.name}: {exc}", EXIT_DIFFERS)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fail(command: str, message: str, code: int) -> NoReturn:
    print(f"cedarflow table {command}: {message}", file=sys.stderr)
    raise SystemExit(code)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE
