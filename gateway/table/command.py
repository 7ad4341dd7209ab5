"""`cedarflow table create|check|export|import`: the DynamoDB table the stores need, made and
verified by the platform engineer before `cedarflow serve` runs (store/dynamo/provision.py,
check.py), and copied to files and back (store/dynamo/transfer.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
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

    export = actions.add_parser(
        "export",
        help="write every item of the table to a directory",
        description="Scan the table in parallel segments into DIR (new or empty): gzip'd JSON "
        'lines in DynamoDB\'s export format ({"Item": {...}} per line) and manifest.json '
        "(item counts, SHA-256 of each file), written last. The scan is not a snapshot: stop "
        "writes first, or export a table restored to a point in time. Progress on stderr.",
    )
    export.add_argument("--table", required=True, metavar="URI", help=URI_HELP)
    export.add_argument("--to", required=True, type=Path, metavar="DIR", dest="directory")
    export.add_argument(
        "--segments", type=int, default=4, metavar="N", help="parallel scan segments (default 4)"
    )
    export.set_defaults(run=_run_export)

    load = actions.add_parser(
        "import",
        help="write an export into an empty table",
        description="Check every file of the export in DIR against its manifest, then write "
        "its items into the table (created with the schema if missing), which must be empty "
        "unless --resume is given. Progress on stderr; exit 0 when the table then holds "
        "exactly the exported items.",
    )
    load.add_argument("--table", required=True, metavar="URI", help=URI_HELP)
    load.add_argument("--from", required=True, type=Path, metavar="DIR", dest="directory")
    load.add_argument(
        "--resume",
        action="store_true",
        help="the table is not empty because an import of this export stopped: write every "
        "item again (the same values) to finish it",
    )
    load.add_argument(
        "--writers", type=int, default=4, metavar="N", help="files written at once (default 4)"
    )
    load.set_defaults(run=_run_import)
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


def _run_export(args: argparse.Namespace) -> int:
    from store.dynamo.transfer import export_table

    table = _table(args, "export")
    manifest = _transferring(
        table,
        "export",
        lambda: export_table(table, args.directory, segments=args.segments, say=_progress),
    )
    print(f"exported {manifest.items} items of {table.name} to {args.directory}")
    return EXIT_OK


def _run_import(args: argparse.Namespace) -> int:
    from store.dynamo.transfer import import_table, read_manifest

    table = _table(args, "import")
    manifest = _transferring(table, "import", lambda: read_manifest(args.directory))
    held = _transferring(
        table,
        "import",
        lambda: import_table(
            table, args.directory, resume=args.resume, writers=args.writers, say=_progress
        ),
    )
    if held != manifest.items:
        print(
            f"DynamoDB table {table.name} holds {held} items, the export {manifest.items}: "
            "it held other items before the import"
        )
        return EXIT_DIFFERS
    print(f"imported {manifest.items} items from {args.directory} into {table.name}")
    return EXIT_OK


def _transferring(table, command: str, work: Callable):
    from store.dynamo.transfer import TransferError

    try:
        return _reading(table, command, work)
    except TransferError as exc:
        _fail(command, str(exc), EXIT_DIFFERS)


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
