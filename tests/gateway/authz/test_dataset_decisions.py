"""A dataset is decided on the experiments it is linked to: reads when any of them allows,
changes when all of them do, linking when the new experiment allows too; a dataset linked to
nothing is for administrators; one that does not exist is denied like one the caller may not
see, and a denial names the dataset, never its experiments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.authz.policies import load_policies
from gateway.simulate.bindings import bindings_from_data
from gateway.simulate.inputs import Location
from gateway.simulate.request import simulate_request
from gateway.simulate.sources import FileSource

POLICIES = Path(__file__).resolve().parents[3] / "policies"
BINDINGS = {
    "experiments": {
        "1": {"users": {"ann": "manager", "rae": "reader", "eve": "editor"}, "datasets": ["d-a"]},
        "2": {"users": {"bo": "editor", "eve": "editor"}, "datasets": ["d-a", "d-b"]},
        "3": {"users": {"ann": "reader"}, "datasets": ["d-b"], "private": True},
    }
}
BASE = "/api/3.0/mlflow/datasets"


@pytest.fixture(scope="module")
def decide():
    bundle = load_policies(POLICIES)
    data = bindings_from_data(BINDINGS, Location("bindings"))
    data.datasets["d-orphan"] = ()
    source = FileSource(data)

    def run(user: str, method: str, target: str, body: dict | None = None, groups=()):
        raw = json.dumps(body).encode() if body is not None else b""
        result = simulate_request(bundle, source, user, groups, method, target, raw)
        return result.verdict

    return run


@pytest.mark.parametrize(
    ("user", "allowed"),
    [("ann", True), ("rae", True), ("bo", True), ("eve", True), ("nobody", False)],
)
def test_reading_needs_any_linked_experiment(decide, user, allowed):
    for path in ("", "/records", "/experiment-ids"):
        assert decide(user, "GET", f"{BASE}/d-a{path}").allowed is allowed


@pytest.mark.parametrize(
    ("user", "allowed"), [("ann", False), ("rae", False), ("bo", False), ("eve", True)]
)
def test_changing_needs_every_linked_experiment(decide, user, allowed):
    tags = {"tags": json.dumps({"k": "v"})}
    assert decide(user, "PATCH", f"{BASE}/d-a/tags", tags).allowed is allowed
    records = {"records": json.dumps([{"inputs": {"q": 1}}])}
    assert decide(user, "POST", f"{BASE}/d-a/records", records).allowed is allowed


def test_linking_needs_edit_on_the_new_experiment_and_deleting_a_manager_of_all(decide):
    link = {"experiment_ids": ["3"]}
    assert not decide("eve", "POST", f"{BASE}/d-a/add-experiments", link).allowed
    assert decide("eve", "POST", f"{BASE}/d-a/add-experiments", {"experiment_ids": ["1"]}).allowed
    assert not decide("ann", "DELETE", f"{BASE}/d-a").allowed  # manager of 1 only
    assert decide("root", "DELETE", f"{BASE}/d-a", groups=("admins",)).allowed


def test_a_private_experiment_is_not_shared_through_a_dataset(decide):
    # bo edits 2, which d-b shares with the private 3: he reads d-b through 2, changes nothing
    assert decide("bo", "GET", f"{BASE}/d-b").allowed
    assert not decide("bo", "PATCH", f"{BASE}/d-b/tags", {"tags": "{}"}).allowed


def test_orphans_are_for_administrators_and_missing_datasets_are_denied_alike(decide):
    assert not decide("ann", "GET", f"{BASE}/d-orphan").allowed
    assert decide("root", "GET", f"{BASE}/d-orphan", groups=("admins",)).allowed
    for dataset in ("d-orphan", "d-none", "d-b"):
        error = decide("rae", "GET", f"{BASE}/{dataset}/records").error()
        assert error is not None and error.status_code == 403
        assert f"dataset '{dataset}'" in error.message
        assert "experiment" not in error.message
