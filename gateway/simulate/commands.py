"""What each `simulate` command does (the command line itself is gateway/simulate/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from gateway.simulate.inputs import (
    EXIT_FINDING,
    EXIT_INPUT,
    EXIT_OK,
    EXIT_POLICY,
    EXIT_USAGE,
    InputError,
)
from store.vocabulary import WORKSPACE


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def default_policies() -> Path:
    here = Path("policies")
    if (here / "schema.cedarschema").is_file():
        return here
    from gateway.authz.policies import PACKAGED_POLICIES

    return PACKAGED_POLICIES


def _load(directory: Path | None):
    from gateway.authz.policies import load_policies

    return load_policies(directory or default_policies())


def _guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Policy errors exit 3 and input errors 4, each located as FILE:LINE:COLUMN."""

    def wrapper(args: argparse.Namespace) -> int:
        from gateway.authz.policies import PolicyLoadError

        try:
            return run(args)
        except PolicyLoadError as exc:
            for error in exc.errors:
                print(
                    f"{_rel(error.file)}:{error.line}:{error.column}: {error.message}",
                    file=sys.stderr,
                )
            return EXIT_POLICY
        except InputError as exc:
            print(
                f"{_rel(exc.where.file)}:{exc.where.line}:{exc.where.column}: {exc.message}",
                file=sys.stderr,
            )
            return EXIT_INPUT

    wrapper.__name__ = run.__name__
    return wrapper


def _rel(path: str) -> str:
    from gateway.simulate.catalog import relative

    return relative(path)


def _source(args: argparse.Namespace):
    from gateway.simulate.inputs import Location
    from gateway.simulate.sources import open_source

    try:
        return open_source(args.bindings, args.table)
    except InputError:
        raise
    except Exception as exc:  # a table that cannot be reached, a bad URI
        raise InputError(Location(args.table or args.bindings or "-"), str(exc)) from None


@_guarded
def run_check(args: argparse.Namespace) -> int:
    from gateway.simulate.check import parse_resource, render_check, run_check, version_context
    from store.vocabulary import DATASET, REGISTERED_MODEL

    bundle = _load(args.policies)
    try:
        resource = parse_resource(args.resource)
    except ValueError as exc:
        print(f"simulate check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    source = _source(args)
    if not (args.bindings or args.table) and resource.kind != WORKSPACE:
        print(
            "simulate check: no --bindings or --table: every resource is unknown", file=sys.stderr
        )
    user = source.subject(args.user)
    context = None
    if resource.kind == REGISTERED_MODEL and (args.version or args.stage):
        facts = source.version_facts(resource.id, args.version) if args.version else None
        stage = args.stage or (facts.stage if facts else None)
        context = version_context(args.version, stage, facts.aliases if facts else ())
    linked = None
    if resource.kind == DATASET:
        linked = asyncio.run(source.dataset_experiments((resource.id,)))
    result = run_check(
        bundle,
        user,
        _names(args.groups),
        args.action,
        resource,
        source.lookup,
        _names(args.admin_groups),
        context,
        display=args.user,
        linked_datasets=linked,
    )
    print(render_check(result, bundle))
    return EXIT_OK if result.allowed else EXIT_FINDING


@_guarded
def run_request(args: argparse.Namespace) -> int:
    from gateway.simulate.request import render_request, simulate_request

    bundle = _load(args.policies)
    body = args.body
    if body.startswith("@"):
        from gateway.simulate.inputs import Location

        try:
            body = Path(body[1:]).read_text()
        except OSError as exc:
            raise InputError(Location(body[1:]), f"cannot read: {exc}") from None
    source = _source(args)
    user = source.subject(args.user)
    groups = _names(args.groups)
    headers = {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            print(f"simulate request: --header {header!r}: expected NAME:VALUE", file=sys.stderr)
            return EXIT_USAGE
        headers[name.strip()] = value.strip()
    result = simulate_request(
        bundle,
        source,
        user,
        groups,
        args.method,
        args.path,
        body,
        _names(args.admin_groups),
        headers,
        display=args.user,
    )
    print(render_request(result, bundle, args.user, groups))
    return EXIT_OK if result.forwarded else EXIT_FINDING


@_guarded
def run_matrix(args: argparse.Namespace) -> int:
    from gateway.simulate.matrix import build_matrix, render

    bundle = _load(args.policies)
    sys.stdout.write(render(build_matrix(bundle, _names(args.admin_groups)), args.format))
    return EXIT_OK


@_guarded
def run_test(args: argparse.Namespace) -> int:
    from gateway.authz.policies import load_policies
    from gateway.simulate.casefile import (
        default_policies_for,
        load_case_file,
        render_result,
        run_case,
    )

    failed = total = 0
    for path in args.files:
        cases = load_case_file(path)
        folder = args.policies or cases.policies or default_policies_for(path)
        bundle = load_policies(folder) if folder else _load(None)
        admin = cases.admin_groups if cases.admin_groups is not None else _names(args.admin_groups)
        for case in cases.cases:
            result = run_case(case, bundle, cases.bindings, admin)
            total += 1
            failed += not result.passed
            if not (args.quiet and result.passed):
                print(render_result(result))
    print(f"{total - failed} passed, {failed} failed")
    return EXIT_FINDING if failed else EXIT_OK


@_guarded
def run_diff(args: argparse.Namespace) -> int:
    from gateway.authz.policies import load_policies
    from gateway.simulate.catalog import Catalog, catalog
    from gateway.simulate.diff import diff_matrices, render_diff
    from gateway.simulate.matrix import build_matrix
    from gateway.simulate.revisions import export_revision

    head_dir = args.head or default_policies()
    admin = _names(args.admin_groups)
    with tempfile.TemporaryDirectory(prefix="cedarflow-policies-") as tmp:
        base_dir = Path(args.base)
        base_name = args.base
        if not base_dir.is_dir():
            base_dir = export_revision(args.base, head_dir, Path(tmp) / "policies")
            base_name = f"{args.base} (git)"
        base = load_policies(base_dir)
        head = load_policies(head_dir)
        base_actions, head_actions = catalog(base), catalog(head)
        # both sides over the union of actions: an action one schema lacks is denied there
        union = Catalog(
            {
                t: tuple(
                    dict.fromkeys(base_actions.actions.get(t, ()) + head_actions.actions.get(t, ()))
                )
                for t in dict.fromkeys([*base_actions.actions, *head_actions.actions])
            }
        )
        changes = diff_matrices(
            build_matrix(base, admin, _restrict(union, base_actions)),
            build_matrix(head, admin, _restrict(union, head_actions)),
        )
        print(render_diff(changes, base, head, base_name, str(head_dir)))
    return EXIT_FINDING if changes else EXIT_OK


def _restrict(union, own):
    from gateway.simulate.catalog import Catalog

    known = set(own.all_actions())
    return Catalog({t: tuple(a for a in names if a in known) for t, names in union.actions.items()})


@_guarded
def run_replay(args: argparse.Namespace) -> int:
    from gateway.simulate.replay import read_audit, render_replay, replay

    bundle = _load(args.policies)
    source = _source(args)
    report = replay(read_audit(args.audit), bundle, source, _names(args.admin_groups))
    print(render_replay(report, bundle))
    return EXIT_FINDING if report.flips else EXIT_OK
