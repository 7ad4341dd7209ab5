"""`cedarflow grant | revoke | permissions`: role bindings from the command line.

They call the gateway's permissions API at MLFLOW_TRACKING_URI with the same credentials
MLflow's client uses (MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_AUTH's provider):

    cedarflow grant --user bob --role reader --model churn
    cedarflow grant --user alice@dev --role editor --model churn   # a name two issuers share
    cedarflow grant --principal service:nightly --role editor --experiment 12
    cedarflow grant --group vision --role editor --experiment 12
    cedarflow revoke --user bob --model churn
    cedarflow permissions --experiment 12 [--user carol] [--private on|off]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from store.vocabulary import ROLES

_BASE = "/api/3.0/cedarflow/permissions"


def add_permission_commands(subparsers: argparse._SubParsersAction) -> None:
    grant = subparsers.add_parser("grant", help="give a user or group a role on a resource")
    _who(grant)
    grant.add_argument("--role", required=True, choices=ROLES)
    _resource(grant)
    grant.set_defaults(command="grant", run=run_grant)

    revoke = subparsers.add_parser("revoke", help="remove a user's or group's role")
    _who(revoke)
    _resource(revoke)
    revoke.set_defaults(command="revoke", run=run_revoke)

    show = subparsers.add_parser(
        "permissions", help="a resource's bindings and your (or a user's) effective role"
    )
    _resource(show)
    show.add_argument("--user", help="whose effective role to show (default: yours)")
    show.add_argument("--private", choices=("on", "off"), help="make an experiment private")
    show.set_defaults(command="permissions", run=run_permissions)


def _who(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--user",
        help="user name (as shown by the identity provider); NAME@TAG when several issuers "
        "or a machine client share the name",
    )
    who.add_argument("--principal", metavar="ID", help="principal id (see `permissions`)")
    who.add_argument("--group", help="group name")


def _resource(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--experiment", metavar="ID", help="experiment id")
    what.add_argument("--model", metavar="NAME", help="registered model name")


def _target(args) -> dict:
    if args.experiment:
        return {"resource_type": "experiment", "resource_id": args.experiment}
    return {"resource_type": "registered_model", "resource_id": args.model}


def _principal(args) -> dict:
    if args.user:
        return {"username": args.user}
    if args.principal:
        return {"subject": args.principal}
    return {"group": args.group}


def run_grant(args) -> int:
    return _print(
        _call("POST", "grant", json={**_target(args), **_principal(args), "role": args.role})
    )


def run_revoke(args) -> int:
    return _print(_call("POST", "revoke", json={**_target(args), **_principal(args)}))


def run_permissions(args) -> int:
    target = _target(args)
    out: dict = {}
    if args.private:
        if not args.experiment:
            print("cedarflow: --private applies to experiments", file=sys.stderr)
            return 2
        body = {"experiment_id": args.experiment, "private": args.private == "on"}
        out["private"] = _call("POST", "private", json=body)
    query = {**target, **({"username": args.user} if args.user else {})}
    out["effective"] = _call("GET", "effective", params=query)
    listing = _call("GET", "list", params=target, allow_denied=True)
    if listing is not None:
        out["bindings"] = listing.get("bindings")
    return _print(out)


def _call(method: str, name: str, *, allow_denied: bool = False, **kwargs):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking._tracking_service.utils import get_default_host_creds
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise SystemExit("cedarflow: set MLFLOW_TRACKING_URI to the gateway's URL")
    endpoint = f"{_BASE}/{name}"
    response = http_request(get_default_host_creds(uri), endpoint, method, **kwargs)
    if allow_denied and response.status_code == 403:
        return None
    try:
        verify_rest_response(response, endpoint)
    except MlflowException as exc:
        raise SystemExit(f"cedarflow: {exc.message}") from None
    return response.json()


def _print(value) -> int:
    print(json.dumps(value, indent=2, sort_keys=True))
    return 0
