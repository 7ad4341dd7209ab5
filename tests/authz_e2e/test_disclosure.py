"""What the stack tells a caller about others: users, administrators, hidden items.

Hugo manages his own experiment. Asking about another user tells him no more than the
bindings he manages already show: not whether a name exists, not who is an administrator.
Page tokens are sealed: they show no offset, and an altered one is refused like MLflow
refuses a bad token.
"""

from __future__ import annotations

import base64

import pytest
from mlflow import MlflowClient

HUGO = ("hugo", ("dreams",))
IRIS = ("iris", ("dreams",))
ADA = ("ada", ("admins",))
OUTSIDER = ("otto", ("elsewhere",))
EFFECTIVE = "/api/3.0/cedarflow/permissions/effective"
GET = "/api/3.0/mlflow/users/permissions/get"


@pytest.fixture(scope="module")
def experiment_id(authz_stack):
    for user in (ADA, IRIS, OUTSIDER):
        with authz_stack.http(*user) as http:  # each signs in once: the gateway knows them
            http.get("/api/2.0/mlflow/experiments/search", params={"max_results": 1})
    with authz_stack.as_user(*HUGO):
        experiment_id = MlflowClient().create_experiment("hugo-disclosure")
    with authz_stack.http(*HUGO) as http:
        granted = http.post(
            "/api/3.0/cedarflow/permissions/grant",
            json={
                "resource_type": "experiment",
                "resource_id": experiment_id,
                "username": "iris",
                "role": "reader",
            },
        )
        assert granted.status_code == 200, granted.text
    return experiment_id


def test_a_manager_learns_nothing_about_users_not_bound_to_his_experiment(
    authz_stack, experiment_id
):
    target = {"resource_type": "experiment", "resource_id": experiment_id}
    with authz_stack.http(*HUGO) as http:
        answers = {
            name: http.get(EFFECTIVE, params={**target, "username": name})
            for name in ("ada", "otto", "never-signed-in")
        }
        mlflow_shaped = {
            name: http.get(GET, params={**target, "username": name})
            for name in ("ada", "never-signed-in")
        }
        bound = http.get(GET, params={**target, "username": "iris"})
    assert {r.status_code for r in answers.values()} == {200}
    bodies = [r.json() for r in answers.values()]
    assert bodies[0] == bodies[1] == bodies[2]  # an administrator, a user, nobody: alike
    assert bodies[0]["permission"] == "NO_PERMISSIONS"
    assert "admin-all" not in str(bodies) and "policies" not in str(bodies)
    assert [r.json() for r in mlflow_shaped.values()] == [
        {"allowed": False, "permission": "NO_PERMISSIONS"}
    ] * 2
    assert bound.json() == {"allowed": True, "permission": "READ"}  # what he granted


def test_only_administrators_ask_for_another_users_effective_role(authz_stack, experiment_id):
    target = {"resource_type": "experiment", "resource_id": experiment_id}
    with authz_stack.http(*OUTSIDER) as http:  # neither admin nor manager here
        refused = http.get(EFFECTIVE, params={**target, "username": "hugo"})
        assert refused.status_code == 403
        own = http.get(EFFECTIVE, params=target).json()  # about oneself: as before
        assert own["role"] is None and all("policies" in d for d in own["decisions"])
    with authz_stack.http(*ADA) as http:
        about_hugo = http.get(EFFECTIVE, params={**target, "username": "hugo"})
        unknown = http.get(EFFECTIVE, params={**target, "username": "never-signed-in"})
    assert about_hugo.status_code == 200
    answer = about_hugo.json()
    assert answer["role"] == "manager" and answer["permission"] == "MANAGE"
    assert all("policies" not in d for d in answer["decisions"])  # never others' policies
    assert unknown.status_code == 404


def _opened(token: str) -> bytes:
    """Whatever base64 decoding shows of every part of a token."""
    parts = token.split(".")
    return b"".join(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in parts if p)


def test_page_tokens_are_sealed(authz_stack, experiment_id):
    with authz_stack.as_user(*HUGO):
        client = MlflowClient()
        for i in range(3):
            client.create_run(experiment_id, run_name=f"r{i}")
    with authz_stack.http(*HUGO) as http:
        searches = [
            ("/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id]}),
            ("/api/2.0/mlflow/experiments/search", {}),
        ]
        for path, body in searches:
            first = http.post(path, json={**body, "max_results": 1})
            assert first.status_code == 200, first.text
            token = first.json()["next_page_token"]
            raw = _opened(token)
            assert b"offset" not in raw and b'"o"' not in raw  # nothing readable inside
            assert http.post(path, json={**body, "max_results": 1, "page_token": token}).is_success
            altered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
            legacy = base64.urlsafe_b64encode(b'{"offset": 1}').decode()
            for bad in (altered, legacy):
                refused = http.post(path, json={**body, "max_results": 1, "page_token": bad})
                assert refused.status_code == 400, (path, refused.text)
                error = refused.json()
                assert error["error_code"] == "INVALID_PARAMETER_VALUE"
                assert error["message"].startswith("Invalid page token")
