"""The signed-in user's account calls the UI makes, answered by the gateway through the real
stack: `users/current/permissions` lists the caller's effective role on what it is bound to
(the review page enables its controls on it), `users/roles/list` its own bindings (direct and
per group), `users/list` the user names, and `users/update-password` is refused."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

MONA = ("mona-acct", ("acct-team",))  # manager: she creates the experiment and the model
EDDIE = ("eddie-acct", ("acct-team",))  # editor: the creator's group
RITA = ("rita-acct", ("acct-readers",))  # reader: her group is bound as reader
OSCAR = ("oscar-acct", ("acct-outside",))  # bound to nothing
PERMISSIONS = "/ajax-api/3.0/mlflow/users/current/permissions"
ROLES = "/ajax-api/3.0/mlflow/users/roles/list"


@pytest.fixture(scope="module")
def experiment(authz_stack):
    with authz_stack.as_user(*MONA):
        experiment_id = MlflowClient().create_experiment("acct-mona")
    with authz_stack.http(*MONA) as http:
        http.post(
            "/api/3.0/cedarflow/permissions/grant",
            json={
                "resource_type": "experiment",
                "resource_id": experiment_id,
                "group": "acct-readers",
                "role": "reader",
            },
        ).raise_for_status()
    return experiment_id


def granted(http, experiment_id: str) -> list[str]:
    answer = http.get(PERMISSIONS)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["is_admin"] is False
    return [
        p["permission"]
        for p in body["permissions"]
        if (p["resource_type"], p["resource_pattern"]) == ("experiment", experiment_id)
    ]


def test_current_permissions_name_each_callers_effective_role(authz_stack, experiment):
    expected = {MONA: ["MANAGE"], EDDIE: ["EDIT"], RITA: ["READ"], OSCAR: []}
    for user, permissions in expected.items():
        with authz_stack.http(*user) as http:
            assert granted(http, experiment) == permissions, user
    with authz_stack.http(*MONA) as http:
        row = next(
            p for p in http.get(PERMISSIONS).json()["permissions"]
            if p["resource_pattern"] == experiment
        )  # fmt: skip
        assert row["workspace"] == "default" and isinstance(row["role_id"], int)


def test_an_administrator_is_told_so(authz_stack, experiment):
    with authz_stack.http("root-acct", ("admins",)) as http:
        assert http.get(PERMISSIONS).json()["is_admin"] is True


def test_roles_list_shows_direct_and_group_bindings_of_the_caller_only(authz_stack, experiment):
    with authz_stack.http(*MONA) as http:
        roles = http.get(ROLES, params={"username": MONA[0]}).json()["roles"]
        direct = [p for r in roles if r["name"].startswith("__user_") for p in r["permissions"]]
        assert {"resource_type": "experiment", "resource_pattern": experiment} in [
            {k: p[k] for k in ("resource_type", "resource_pattern")} for p in direct
        ]
        groups = {r["name"]: r for r in roles if r["name"].startswith("group:")}
        assert [p["permission"] for p in groups["group:acct-team"]["permissions"]] == ["EDIT"]
        other = http.get(ROLES, params={"username": RITA[0]})
        assert other.status_code == 403 and other.json()["error_code"] == "PERMISSION_DENIED"
    with authz_stack.http(*RITA) as http:
        roles = http.get(ROLES, params={"username": RITA[0]}).json()["roles"]
        assert [(r["name"], [p["permission"] for p in r["permissions"]]) for r in roles] == [
            (roles[0]["name"], []),
            ("group:acct-readers", ["READ"]),
        ]


def test_users_list_names_who_signed_in(authz_stack, experiment):
    with authz_stack.http(*OSCAR) as http:
        answer = http.get("/ajax-api/2.0/mlflow/users/list")
    assert answer.status_code == 200
    names = [u["username"] for u in answer.json()["users"]]
    assert {MONA[0], OSCAR[0]} <= set(names)
    assert names == sorted(names)


def test_password_changes_are_refused(authz_stack, experiment):
    with authz_stack.http(*EDDIE) as http:
        answer = http.patch(
            "/ajax-api/2.0/mlflow/users/update-password",
            json={"username": EDDIE[0], "password": "new-secret"},
        )
    assert answer.status_code == 400
    assert answer.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "Passwords are managed by your identity provider.",
    }
