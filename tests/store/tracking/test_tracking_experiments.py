"""Experiments in the DynamoDB tracking store (moto)."""

from __future__ import annotations

from mlflow.entities import ExperimentTag, ViewType
from store_support import ARTIFACT_ROOT, error_code

from store.keys import name_claim_key


def test_default_experiment_exists_after_first_start(moto_store):
    default = moto_store.get_experiment("0")
    assert (default.name, default.lifecycle_stage) == ("Default", "active")
    assert default.artifact_location == f"{ARTIFACT_ROOT}/0"
    assert moto_store.get_experiment(None).experiment_id == "0"


def test_create_and_read_experiment(moto_store):
    experiment_id = moto_store.create_experiment("first", tags=[ExperimentTag("team", "a")])
    assert experiment_id == "1"
    experiment = moto_store.get_experiment(experiment_id)
    assert experiment.tags == {"team": "a"}
    assert experiment.artifact_location == f"{ARTIFACT_ROOT}/1"
    assert moto_store.get_experiment_by_name("first").experiment_id == "1"
    assert moto_store.get_experiment_by_name("missing") is None
    assert moto_store.get_experiment("0001").experiment_id == "1"


def test_caller_given_artifact_location_is_kept(moto_store):
    experiment_id = moto_store.create_experiment("x", artifact_location="s3://bucket/path")
    assert moto_store.get_experiment(experiment_id).artifact_location == "s3://bucket/path"


def test_bad_experiment_ids_and_names(moto_store):
    assert error_code(moto_store.get_experiment, "abc") == "INVALID_PARAMETER_VALUE"
    assert error_code(moto_store.get_experiment, "42") == "RESOURCE_DOES_NOT_EXIST"
    assert error_code(moto_store.create_experiment, "") == "INVALID_PARAMETER_VALUE"
    assert error_code(moto_store.create_experiment, "x" * 501) == "INVALID_PARAMETER_VALUE"


def test_experiment_names_are_unique_even_after_delete(moto_store):
    experiment_id = moto_store.create_experiment("unique")
    assert error_code(moto_store.create_experiment, "unique") == "RESOURCE_ALREADY_EXISTS"
    moto_store.delete_experiment(experiment_id)
    assert error_code(moto_store.create_experiment, "unique") == "RESOURCE_ALREADY_EXISTS"


def test_claim_left_by_a_crash_is_taken_over_only_when_old(moto_store):
    pk, sk = name_claim_key("orphan")
    claim = {"pk": pk, "sk": sk, "experiment_id": "999", "claimed_at": 0}
    moto_store.table.put(claim)
    assert moto_store.get_experiment_by_name("orphan") is None
    experiment_id = moto_store.create_experiment("orphan")
    assert moto_store.get_experiment_by_name("orphan").experiment_id == experiment_id
    pk, sk = name_claim_key("in-progress")
    moto_store.table.put({**claim, "pk": pk, "claimed_at": 2**62})
    assert error_code(moto_store.create_experiment, "in-progress") == "RESOURCE_ALREADY_EXISTS"


def test_rename_moves_the_name(moto_store):
    experiment_id = moto_store.create_experiment("old")
    other = moto_store.create_experiment("taken")
    moto_store.rename_experiment(experiment_id, "new")
    assert moto_store.get_experiment(experiment_id).name == "new"
    assert moto_store.get_experiment_by_name("old") is None
    assert moto_store.create_experiment("old")  # the old name is free again
    assert error_code(moto_store.rename_experiment, experiment_id, "taken") == (
        "RESOURCE_ALREADY_EXISTS"
    )
    assert moto_store.get_experiment(experiment_id).name == "new"
    moto_store.delete_experiment(other)
    assert error_code(moto_store.rename_experiment, other, "zzz") == "INVALID_STATE"
    assert moto_store.get_experiment_by_name("zzz") is None


def test_delete_and_restore_cascade_to_runs(moto_store):
    experiment_id = moto_store.create_experiment("cascade")
    run_id = moto_store.create_run(experiment_id, "u", 1, [], "r").info.run_id
    moto_store.delete_experiment(experiment_id)
    assert moto_store.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert moto_store.get_run(run_id).info.lifecycle_stage == "deleted"
    assert error_code(moto_store.delete_experiment, experiment_id) == "RESOURCE_DOES_NOT_EXIST"
    assert error_code(moto_store.create_run, experiment_id, "u", 1, [], "r") == (
        "INVALID_PARAMETER_VALUE"
    )
    moto_store.restore_experiment(experiment_id)
    assert moto_store.get_run(run_id).info.lifecycle_stage == "active"
    assert error_code(moto_store.restore_experiment, experiment_id) == "RESOURCE_DOES_NOT_EXIST"


def test_experiment_tags(moto_store):
    experiment_id = moto_store.create_experiment("tags")
    moto_store.set_experiment_tag(experiment_id, ExperimentTag("k", "v1"))
    moto_store.set_experiment_tag(experiment_id, ExperimentTag("k", "v2"))
    moto_store.set_experiment_tag(experiment_id, ExperimentTag("mlflow.note.content", "# hi"))
    assert moto_store.get_experiment(experiment_id).tags == {
        "k": "v2",
        "mlflow.note.content": "# hi",
    }
    moto_store.delete_experiment_tag(experiment_id, "k")
    assert error_code(moto_store.delete_experiment_tag, experiment_id, "k") == (
        "RESOURCE_DOES_NOT_EXIST"
    )
    assert error_code(moto_store.set_experiment_tag, "77", ExperimentTag("k", "v")) == (
        "RESOURCE_DOES_NOT_EXIST"
    )
    moto_store.delete_experiment(experiment_id)
    assert error_code(moto_store.set_experiment_tag, experiment_id, ExperimentTag("k", "v")) == (
        "INVALID_PARAMETER_VALUE"
    )


def test_search_experiments_pages_and_view_types(moto_store):
    ids = [moto_store.create_experiment(f"exp-{i}") for i in range(5)]
    moto_store.delete_experiment(ids[0])
    first = moto_store.search_experiments(max_results=2, order_by=["name"])
    assert [e.name for e in first] == ["Default", "exp-1"]
    second = moto_store.search_experiments(max_results=2, order_by=["name"], page_token=first.token)
    third = moto_store.search_experiments(max_results=2, order_by=["name"], page_token=second.token)
    assert [e.name for e in second] == ["exp-2", "exp-3"]
    assert [e.name for e in third] == ["exp-4"] and third.token is None
    deleted = moto_store.search_experiments(view_type=ViewType.DELETED_ONLY)
    assert [e.name for e in deleted] == ["exp-0"]
    assert len(moto_store.search_experiments(view_type=ViewType.ALL)) == 6
    assert error_code(moto_store.search_experiments, ViewType.ALL, 0) == "INVALID_PARAMETER_VALUE"
    assert error_code(moto_store.search_experiments, ViewType.ALL, 10, "name > 'a'") == (
        "INVALID_PARAMETER_VALUE"
    )
    assert (
        error_code(moto_store.search_experiments, ViewType.ALL, 10, None, None, "forged.token")
        == "INVALID_PARAMETER_VALUE"
    )
