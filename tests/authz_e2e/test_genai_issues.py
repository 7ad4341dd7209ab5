"""Issues through the gateway with MLflow's REST calls as the UI makes them: decided on their
experiment (readers get and search, editors create and update, outsiders nothing; a search
without an experiment keeps only the issues the caller may read)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

MONA = ("mona-iss", ("iss-team",))  # manager: she creates the experiments
EDDIE = ("eddie-iss", ("iss-team",))  # editor: the creator's group
RITA = ("rita-iss", ("iss-readers",))  # reader of the first experiment only
OSCAR = ("oscar-iss", ("iss-outside",))  # no binding
BASE = "/ajax-api/3.0/mlflow/issues"


@pytest.fixture(scope="module")
def experiments(authz_stack):
    with authz_stack.as_user(*MONA):
        shared = MlflowClient().create_experiment("iss-shared")
        closed = MlflowClient().create_experiment("iss-closed")
    with authz_stack.http(*MONA) as http:
        http.post(
            "/api/3.0/cedarflow/permissions/grant",
            json={
                "resource_type": "experiment",
                "resource_id": shared,
                "group": "iss-readers",
                "role": "reader",
            },
        ).raise_for_status()
    return shared, closed


def create(http, experiment_id: str, name: str, **more):
    return http.post(
        BASE, json={"experiment_id": experiment_id, "name": name, "description": name, **more}
    )


def test_editors_create_and_update_readers_read_and_search(authz_stack, experiments):
    shared, closed = experiments
    with authz_stack.http(*EDDIE) as http:
        made = create(http, shared, "slow answers", severity="high")
        assert made.status_code == 200, made.text
        issue_id = made.json()["issue"]["issue_id"]
        create(http, closed, "hidden").raise_for_status()
        patched = http.patch(
            f"{BASE}/{issue_id}", json={"issue_id": issue_id, "status": "resolved"}
        )
        assert patched.status_code == 200 and patched.json()["issue"]["status"] == "resolved"
    with authz_stack.http(*RITA) as http:
        assert http.get(f"{BASE}/{issue_id}").json()["issue"]["name"] == "slow answers"
        found = http.post(f"{BASE}/search", json={"experiment_id": shared}).json()
        assert [i["name"] for i in found["issues"]] == ["slow answers"]
        everywhere = http.post(f"{BASE}/search", json={}).json()
        names = {i["name"] for i in everywhere.get("issues", [])}
        assert "slow answers" in names and "hidden" not in names  # filtered per experiment
        assert http.post(f"{BASE}/search", json={"experiment_id": closed}).status_code == 403
        assert create(http, shared, "reader's").status_code == 403
        refused = http.patch(f"{BASE}/{issue_id}", json={"issue_id": issue_id, "name": "x"})
        assert refused.status_code == 403


def test_an_outsider_neither_sees_nor_changes_issues(authz_stack, experiments):
    shared, _ = experiments
    with authz_stack.http(*MONA) as http:
        issue_id = create(http, shared, "rude tone").json()["issue"]["issue_id"]
    with authz_stack.http(*OSCAR) as http:
        known = http.get(f"{BASE}/{issue_id}")
        unknown = http.get(f"{BASE}/iss-{'0' * 32}")
        assert known.status_code == unknown.status_code == 403
        assert http.post(f"{BASE}/search", json={"experiment_id": shared}).status_code == 403
        assert http.post(f"{BASE}/search", json={}).json().get("issues", []) == []
        assert create(http, shared, "x").status_code == 403
        changed = http.patch(f"{BASE}/{issue_id}", json={"issue_id": issue_id, "name": "x"})
        assert changed.status_code == 403
    with authz_stack.http(*MONA) as http:
        assert http.get(f"{BASE}/{issue_id}").json()["issue"]["name"] == "rude tone"
