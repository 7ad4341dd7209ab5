"""Evaluation datasets through the gateway with MLflow's own GenAI client.

Alice (group ds-vision) and Carol (ds-vision: an editor) work in Alice's experiment; Bob
(ds-nlp) has his own; Dave (both groups) edits both. A dataset is readable by readers of any
experiment it is linked to and changed only by editors of all of them; linking needs edit on
the new experiment; deleting needs a manager.
"""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.genai.datasets import create_dataset, get_dataset, search_datasets
from mlflow_calls import denied

ALICE = ("alice-ds", ("ds-vision",))
CAROL = ("carol-ds", ("ds-vision",))
BOB = ("bob-ds", ("ds-nlp",))
DAVE = ("dave-ds", ("ds-vision", "ds-nlp"))
RECORDS = [
    {"inputs": {"question": f"q{n}"}, "expectations": {"answer": f"a{n}"}} for n in range(120)
]


@pytest.fixture(scope="module")
def world(authz_stack):
    with authz_stack.as_user(*ALICE):
        alice_exp = MlflowClient().create_experiment("ds-alice")
    with authz_stack.as_user(*BOB):
        bob_exp = MlflowClient().create_experiment("ds-bob")
    with authz_stack.as_user(*ALICE):
        mlflow.set_experiment(experiment_id=alice_exp)
        dataset = create_dataset(name="qa", experiment_id=alice_exp, tags={"team": "vision"})
        dataset.merge_records(RECORDS)
    return {"alice_exp": alice_exp, "bob_exp": bob_exp, "dataset_id": dataset.dataset_id}


def names(datasets) -> list[str]:
    return [d.name for d in datasets]


def test_the_owner_builds_searches_and_reads_a_dataset(authz_stack, world):
    with authz_stack.as_user(*ALICE):
        found = search_datasets(experiment_ids=[world["alice_exp"]], filter_string="name = 'qa'")
        assert [d.dataset_id for d in found] == [world["dataset_id"]]
        dataset = get_dataset(dataset_id=world["dataset_id"])
        frame = dataset.to_df()
        assert sorted(i["question"] for i in frame["inputs"]) == sorted(
            r["inputs"]["question"] for r in RECORDS
        )
        dataset.merge_records([{"inputs": {"question": "q0"}, "expectations": {"extra": 1}}])
        assert len(get_dataset(dataset_id=world["dataset_id"]).to_df()) == len(RECORDS)
        assert dataset.experiment_ids == [world["alice_exp"]]


def test_an_outsider_is_refused_and_finds_nothing(authz_stack, world):
    with authz_stack.as_user(*BOB):
        assert denied(lambda: get_dataset(dataset_id=world["dataset_id"]))
        assert denied(lambda: MlflowClient().set_dataset_tags(world["dataset_id"], {"k": "v"}))
        assert denied(lambda: MlflowClient().delete_dataset(world["dataset_id"]))
        assert names(search_datasets(experiment_ids=[world["alice_exp"]])) == []
    with authz_stack.http(*BOB) as http:
        records = http.get(f"/api/3.0/mlflow/datasets/{world['dataset_id']}/records")
        assert records.status_code == 403
        assert "experiment" not in records.text  # named as asked: the dataset, not its links
        missing = http.get("/api/3.0/mlflow/datasets/d-0000/records")
        assert missing.status_code == 403  # the same answer: no existence oracle
        message = records.json()["message"].replace(world["dataset_id"], "d-0000")
        assert message == missing.json()["message"]


def test_linking_needs_edit_on_the_new_experiment_and_shares_reads_only(authz_stack, world):
    dataset_id = world["dataset_id"]
    with authz_stack.as_user(*ALICE):  # Alice may not edit Bob's experiment
        assert denied(
            lambda: MlflowClient().add_dataset_to_experiments(dataset_id, [world["bob_exp"]])
        )
    with authz_stack.as_user(*DAVE):
        MlflowClient().add_dataset_to_experiments(dataset_id, [world["bob_exp"]])
    with authz_stack.as_user(*BOB):  # a reader of one linked experiment reads it...
        dataset = get_dataset(dataset_id=dataset_id)
        assert len(dataset.to_df()) == len(RECORDS)
        assert dataset.experiment_ids == [world["bob_exp"]]  # ...but not Alice's experiment id
        assert names(search_datasets(experiment_ids=[world["bob_exp"]])) == ["qa"]
        # ...and changes nothing: Alice's readers see every change
        assert denied(lambda: dataset.merge_records([{"inputs": {"question": "bob"}}]))
        assert denied(lambda: MlflowClient().set_dataset_tags(dataset_id, {"k": "v"}))
    with authz_stack.as_user(*DAVE):
        MlflowClient().remove_dataset_from_experiments(dataset_id, [world["bob_exp"]])
    with authz_stack.as_user(*BOB):
        assert denied(lambda: get_dataset(dataset_id=dataset_id))


def test_an_editor_changes_records_and_tags_and_only_a_manager_deletes(authz_stack, world):
    with authz_stack.as_user(*CAROL):
        client = MlflowClient()
        client.set_dataset_tags(world["dataset_id"], {"stage": "ready"})
        assert get_dataset(dataset_id=world["dataset_id"]).tags["stage"] == "ready"
        assert denied(lambda: client.delete_dataset(world["dataset_id"]))
    with authz_stack.as_user(*ALICE):
        extra = create_dataset(name="scratch", experiment_id=world["alice_exp"])
        MlflowClient().delete_dataset(extra.dataset_id)
        assert names(search_datasets(experiment_ids=[world["alice_exp"]])) == ["qa"]


def test_a_bad_records_page_token_is_a_clear_400(authz_stack, world):
    with authz_stack.http(*ALICE) as http:
        for token in ("garbage", "p1.AAAA", "MTcwMDAwMDAwMDAwMDpkci0x"):
            answer = http.get(
                f"/api/3.0/mlflow/datasets/{world['dataset_id']}/records",
                params={"page_token": token},
            )
            assert answer.status_code == 400, answer.text
            assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
            assert answer.json()["message"].startswith("Invalid page token")


def test_a_search_without_experiments_shows_only_readable_datasets(authz_stack, world):
    with authz_stack.as_user(*BOB):
        mine = create_dataset(name="bobs", experiment_id=world["bob_exp"])
        found = search_datasets()  # every dataset MLflow has, filtered by the gateway
        assert mine.dataset_id in [d.dataset_id for d in found]
        assert world["dataset_id"] not in [d.dataset_id for d in found]
    with authz_stack.as_user(*ALICE):
        found = [d.dataset_id for d in search_datasets(max_results=1)]  # pages refilled
        assert found == [world["dataset_id"]]
    with authz_stack.http(*BOB) as http:
        empty = http.post("/api/3.0/mlflow/datasets/search", json={"experiment_ids": []})
        assert empty.status_code == 200
        assert world["dataset_id"] not in empty.text
