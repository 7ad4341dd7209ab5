"""The permissions API: group bindings, listings, effective roles, and the CLI on top."""

from __future__ import annotations

import argparse
import json

import pytest
from mlflow import MlflowClient

FRANK = ("frank", ("audio",))
GRACE = ("grace", ("video",))
BASE = "/api/3.0/cedarflow/permissions"


@pytest.fixture(scope="module")
def experiment_id(authz_stack):
    with authz_stack.as_user(*GRACE):
        MlflowClient().search_experiments()  # Grace has signed in once
    with authz_stack.as_user(*FRANK):
        return MlflowClient().create_experiment("frank-perms")


def test_group_grant_listing_and_effective_role(authz_stack, experiment_id):
    target = {"resource_type": "experiment", "resource_id": experiment_id}
    with authz_stack.http(*GRACE) as grace:
        before = grace.get(f"{BASE}/effective", params=target).json()
        assert before["role"] is None and before["permission"] == "NO_PERMISSIONS"
        assert grace.get(f"{BASE}/list", params=target).status_code == 403
    with authz_stack.http(*FRANK) as frank:
        granted = frank.post(f"{BASE}/grant", json={**target, "group": "video", "role": "editor"})
        assert granted.status_code == 200, granted.text
        listing = frank.get(f"{BASE}/list", params=target).json()["bindings"]
        assert listing["groups"] == {"audio": "editor", "video": "editor"}
        assert "manager" in listing["users"].values()
    with authz_stack.http(*GRACE) as grace:
        after = grace.get(f"{BASE}/effective", params=target).json()
        assert after["role"] == "editor" and after["permission"] == "EDIT"
        allowed = {d["action"]: d["policies"] for d in after["decisions"] if d["allowed"]}
        assert allowed["SetExperimentTag"] == ["experiment-editor"]
        twin = grace.get(
            "/ajax-api/3.0/mlflow/users/permissions/get",
            params={**target, "username": "grace"},
        ).json()
        assert twin == {"allowed": True, "permission": "EDIT"}
    with authz_stack.http(*FRANK) as frank:
        frank.post(f"{BASE}/revoke", json={**target, "group": "video"}).raise_for_status()
    # invalidated at once in this gateway: no stale read
    with authz_stack.as_user(*GRACE), pytest.raises(Exception, match="PERMISSION_DENIED"):
        MlflowClient().get_experiment(experiment_id)


def test_bad_requests_are_mlflow_json_400s(authz_stack, experiment_id):
    with authz_stack.http(*FRANK) as frank:
        bad = frank.post(
            "/api/3.0/mlflow/users/permissions/grant",
            json={
                "username": "grace",
                "resource_type": "experiment",
                "resource_id": experiment_id,
                "permission": "OWN",
            },
        )
        assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        unknown = frank.post(
            f"{BASE}/grant",
            json={
                "resource_type": "experiment",
                "resource_id": experiment_id,
                "username": "never-seen",
                "role": "reader",
            },
        )
        assert unknown.status_code == 404


def test_cli_grant_and_permissions(authz_stack, experiment_id, capsys):
    from gateway.client.permissions_cli import add_permission_commands

    parser = argparse.ArgumentParser()
    add_permission_commands(parser.add_subparsers())
    with authz_stack.as_user(*FRANK):
        args = parser.parse_args(
            ["grant", "--user", "grace", "--role", "reader", "--experiment", experiment_id]
        )
        assert args.run(args) == 0
        capsys.readouterr()
        args = parser.parse_args(["permissions", "--experiment", experiment_id, "--user", "grace"])
        assert args.run(args) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["effective"]["permission"] == "READ"
    assert "reader" in shown["bindings"]["users"].values()
