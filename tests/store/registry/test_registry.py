"""The DynamoDB model registry store on moto: models, versions, stages, aliases."""

from __future__ import annotations

import pytest
from mlflow.entities.model_registry import ModelVersionTag, RegisteredModelTag
from mlflow.exceptions import MlflowException
from registry_support import all_items, calls, crash_on, error_code

from store.handler.identity import Principal, bind_principal

PROMPT_TAG = "mlflow.prompt.is_prompt"


# ---- registered models ----------------------------------------------------------------------


def test_create_and_get_registered_model(reg):
    created, trips = calls(
        reg, reg.create_registered_model, "churn", [RegisteredModelTag("team", "a")], "d"
    )
    assert trips == {"PutItem": 1}
    got, trips = calls(reg, reg.get_registered_model, "churn")
    assert trips == {"GetItem": 1, "BatchGetItem": 1}  # the next number, uncounted or not
    assert (got.name, got.description, got.tags) == ("churn", "d", {"team": "a"})
    assert got.creation_timestamp == created.creation_timestamp
    assert got.latest_versions == []


def test_duplicate_model_name_is_resource_already_exists(reg):
    reg.create_registered_model("churn")
    with pytest.raises(MlflowException, match=r"Registered Model \(name=churn\) already exists"):
        reg.create_registered_model("churn")


def test_prompt_and_model_cannot_share_a_name(reg):
    reg.create_registered_model("greeting", tags=[RegisteredModelTag(PROMPT_TAG, "true")])
    with pytest.raises(MlflowException, match="already taken by a prompt") as excinfo:
        reg.create_registered_model("greeting")
    assert error_code(excinfo) == "RESOURCE_ALREADY_EXISTS"


@pytest.mark.parametrize("name", ["", "a/b", "a:b"])
def test_invalid_model_name_is_invalid_parameter_value(reg, name):
    with pytest.raises(MlflowException) as excinfo:
        reg.create_registered_model(name)
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"
    assert all_items(reg) == []


def test_unknown_model_is_resource_does_not_exist_everywhere(reg):
    for call in (
        lambda: reg.get_registered_model("nope"),
        lambda: reg.update_registered_model("nope", "d"),
        lambda: reg.rename_registered_model("nope", "other"),
        lambda: reg.delete_registered_model("nope"),
        lambda: reg.set_registered_model_tag("nope", RegisteredModelTag("k", "v")),
        lambda: reg.delete_registered_model_tag("nope", "k"),
        lambda: reg.create_model_version("nope", "s3://b/m"),
        lambda: reg.get_latest_versions("nope"),
        lambda: reg.delete_registered_model_alias("nope", "champion"),
    ):
        with pytest.raises(MlflowException, match="Registered Model with name=nope not found"):
            call()
    assert all_items(reg) == []


def test_update_description_and_tags(reg, clock):
    reg.create_registered_model("churn")
    clock.now += 1000
    updated, trips = calls(reg, reg.update_registered_model, "churn", "new words")
    assert trips == {"UpdateItem": 1, "BatchGetItem": 1}
    assert updated.description == "new words"
    assert updated.last_updated_timestamp == clock.now
    _, trips = calls(reg, reg.set_registered_model_tag, "churn", RegisteredModelTag("k", "v"))
    assert trips == {"UpdateItem": 1}
    assert reg.get_registered_model("churn").tags == {"k": "v"}
    _, trips = calls(reg, reg.delete_registered_model_tag, "churn", "k")
    assert trips == {"UpdateItem": 1}
    reg.delete_registered_model_tag("churn", "absent")  # deleting a missing tag is fine
    assert reg.get_registered_model("churn").tags == {}


def test_delete_registered_model_removes_its_versions(reg):
    reg.create_registered_model("churn")
    for _ in range(30):
        reg.create_model_version("churn", "s3://b/m")
    _, trips = calls(reg, reg.delete_registered_model, "churn")
    assert trips == {"GetItem": 1, "DeleteItem": 1, "Query": 1, "BatchWriteItem": 2}
    assert all_items(reg) == []
    reg.create_registered_model("churn")
    assert reg.create_model_version("churn", "s3://b/m").version == 1


# ---- versions -------------------------------------------------------------------------------


def test_version_numbers_are_allocated_in_order_and_never_reused(reg):
    reg.create_registered_model("churn")
    mv, trips = calls(
        reg,
        reg.create_model_version,
        "churn",
        "s3://b/m",
        run_id="r1",
        tags=[ModelVersionTag("k", "v")],
        run_link="http://x",
        description="first",
        model_id="m-123",
    )
    assert trips == {"GetItem": 1, "PutItem": 1, "UpdateItem": 1}
    assert (mv.version, mv.run_id, mv.tags, mv.run_link, mv.description, mv.model_id) == (
        1,
        "r1",
        {"k": "v"},
        "http://x",
        "first",
        "m-123",
    )
    assert mv.current_stage == "None" and mv.status == "READY" and mv.user_id is None
    assert [reg.create_model_version("churn", "s3://b/m").version for _ in range(2)] == [2, 3]
    reg.delete_model_version("churn", 3)
    assert reg.create_model_version("churn", "s3://b/m").version == 4


def test_creating_a_version_updates_the_model(reg, clock):
    reg.create_registered_model("churn")
    clock.now += 5000
    reg.create_model_version("churn", "s3://b/m")
    model, trips = calls(reg, reg.get_registered_model, "churn")
    assert trips == {"GetItem": 1, "BatchGetItem": 1}
    assert model.last_updated_timestamp == clock.now
    assert [v.version for v in model.latest_versions] == [1]


def test_a_version_lost_in_a_crash_leaves_no_gap_and_no_phantom(reg, clock, monkeypatch):
    reg.create_registered_model("churn")
    reg.create_model_version("churn", "s3://b/m")
    crash_on(monkeypatch, reg, "put")
    with pytest.raises(RuntimeError):
        reg.create_model_version("churn", "s3://b/lost")
    clock.now += 61_000
    assert [v.version for v in reg.get_registered_model("churn").latest_versions] == [1]
    assert reg.create_model_version("churn", "s3://b/n").version == 2
    assert [v.version for v in reg.get_latest_versions("churn")] == [2]


def test_a_version_written_but_not_counted_is_the_latest_and_next_comes_after(reg, monkeypatch):
    reg.create_registered_model("churn")
    reg.create_model_version("churn", "s3://b/m")
    crash_on(monkeypatch, reg, "update")
    with pytest.raises(RuntimeError):
        reg.create_model_version("churn", "s3://b/uncounted")
    assert [v.version for v in reg.get_registered_model("churn").latest_versions] == [2]
    assert reg.create_model_version("churn", "s3://b/n").version == 3
    assert [v.version for v in reg.get_latest_versions("churn")] == [3]


def test_latest_versions_stay_true_when_a_transition_dies_midway(reg, monkeypatch):
    reg.create_registered_model("churn")
    reg.create_model_version("churn", "s3://b/m")
    reg.create_model_version("churn", "s3://b/n")
    original = reg.table.update
    state = {"calls": 0}

    def dies_on_second_update(*args, **kwargs):
        state["calls"] += 1
        if state["calls"] == 2:  # the summary was raised; the version write never happens
            raise RuntimeError("process died")
        return original(*args, **kwargs)

    monkeypatch.setattr(reg.table, "update", dies_on_second_update)
    with pytest.raises(RuntimeError):
        reg.transition_model_version_stage("churn", 2, "Production", False)
    latest = reg.get_latest_versions("churn")
    assert [(v.version, v.current_stage) for v in latest] == [(2, "None")]
    reg.transition_model_version_stage("churn", 1, "Staging", False)
    latest, trips = calls(reg, reg.get_latest_versions, "churn")
    assert trips == {"GetItem": 1, "BatchGetItem": 1}  # the summary holds again
    assert sorted((v.version, v.current_stage) for v in latest) == [(1, "Staging"), (2, "None")]


def test_get_update_and_download_uri(reg):
    reg.create_registered_model("churn")
    reg.create_model_version("churn", "s3://b/m")
    got, trips = calls(reg, reg.get_model_version, "churn", "1")
    assert trips == {"GetItem": 2}
    assert got.source == "s3://b/m"
    updated, trips = calls(reg, reg.update_model_version, "churn", 1, "better")
    assert trips == {"GetItem": 1, "UpdateItem": 1}
    assert updated.description == "better"
    uri, trips = calls(reg, reg.get_model_version_download_uri, "churn", 1)
    assert (uri, trips) == ("s3://b/m", {"GetItem": 2})


def test_unknown_or_deleted_version_is_resource_does_not_exist(reg):
    reg.create_registered_model("churn")
    reg.create_model_version("churn", "s3://b/m")
    reg.delete_model_version("churn", 1)
    for call in (
        lambda: reg.get_model_version("churn", 1),
        lambda: reg.get_model_version("churn", 7),
        lambda: reg.update_model_version("churn", 1, "d"),
        lambda: reg.delete_model_version("churn", 1),
        lambda: reg.transition_model_version_stage("churn", 1, "Staging", False),
        lambda: reg.set_model_version_tag("churn", 1, ModelVersionTag("k", "v")),
        lambda: reg.get_model_version_download_uri("churn", 1),
    ):
        with pytest.raises(MlflowException, match=r"Model Version \(name=churn, version=1|7\)"):
            call()


def test_version_that_is_not_a_number_is_invalid_parameter_value(reg):
    reg.create_registered_model("churn")
    with pytest.raises(MlflowException) as excinfo:
        reg.get_model_version("churn", "one")
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"


def test_delete_model_version_redacts_and_drops_its_aliases(reg):
    reg.create_registered_model("churn")
    reg.create_model_version("churn", "s3://b/m", run_id="r1", description="d")
    reg.create_model_version("churn", "s3://b/n")
    reg.set_registered_model_alias("churn", "champion", 1)
    reg.set_registered_model_alias("churn", "stable", 2)
    _, trips = calls(reg, reg.delete_model_version, "churn", 1)
    assert trips == {"GetItem": 1, "UpdateItem": 2}
    assert reg.get_registered_model("churn").aliases == {"stable": 2}
    assert [v.version for v in reg.search_model_versions("name = 'churn'")] == [2]
    tombstone = reg.table.get("RM#" + reg._load_model("churn")["rid"], "MV#0000000001")
    assert tombstone["source"] == "REDACTED-SOURCE-PATH" and "description" not in tombstone


def test_version_tags(reg):
    reg.create_registered_model("churn")
    reg.create_model_version("churn", "s3://b/m")
    _, trips = calls(reg, reg.set_model_version_tag, "churn", 1, ModelVersionTag("k", "v"))
    assert trips == {"GetItem": 1, "UpdateItem": 1}
    assert reg.get_model_version("churn", 1).tags == {"k": "v"}
    reg.delete_model_version_tag("churn", 1, "k")
    assert reg.get_model_version("churn", 1).tags == {}


def test_user_id_is_the_authenticated_principal(reg):
    reg.create_registered_model("churn")
    with bind_principal(Principal(subject="sub-1", username="alice")):
        mv = reg.create_model_version("churn", "s3://b/m")
    assert mv.user_id == "alice"
    assert reg.get_model_version("churn", 1).user_id == "alice"


# ---- stages -----------------------------------------------------------------------------------


def test_transition_and_archive_existing_versions(reg):
    reg.create_registered_model("churn")
    for _ in range(3):
        reg.create_model_version("churn", "s3://b/m")
    reg.transition_model_version_stage("churn", 1, "Production", False)
    reg.transition_model_version_stage("churn", 2, "production", False)
    mv, trips = calls(reg, reg.transition_model_version_stage, "churn", 3, "Production", True)
    assert trips == {"GetItem": 1, "Query": 1, "UpdateItem": 5}
    assert mv.current_stage == "Production"
    stages = {v.version: v.current_stage for v in reg.search_model_versions("name='churn'")}
    assert stages == {1: "Archived", 2: "Archived", 3: "Production"}
    latest = reg.get_latest_versions("churn", ["Production", "Archived"])
    assert sorted((v.current_stage, v.version) for v in latest) == [
        ("Archived", 2),
        ("Production", 3),
    ]


def test_invalid_stage_is_invalid_parameter_value_and_changes_nothing(reg):
    reg.create_registered_model("churn")
    reg.create_model_version("churn", "s3://b/m")
    before = all_items(reg)
    with pytest.raises(MlflowException, match="Invalid Model Version stage") as excinfo:
        reg.transition_model_version_stage("churn", 1, "Prod", False)
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match="not an Active stage"):
        reg.transition_model_version_stage("churn", 1, "Archived", True)
    assert all_items(reg) == before


# ---- aliases ----------------------------------------------------------------------------------


def test_alias_round_trips_and_latest(reg):
    reg.create_registered_model("churn")
    reg.create_model_version("churn", "s3://b/m")
    reg.create_model_version("churn", "s3://b/n")
    _, trips = calls(reg, reg.set_registered_model_alias, "churn", "champion", "1")
    assert trips == {"GetItem": 2, "UpdateItem": 1}
    mv, trips = calls(reg, reg.get_model_version_by_alias, "churn", "champion")
    assert trips == {"GetItem": 2}
    assert (mv.version, mv.aliases) == (1, ["champion"])
    assert reg.get_model_version_by_alias("churn", "latest").version == 2
    _, trips = calls(reg, reg.delete_registered_model_alias, "churn", "champion")
    assert trips == {"UpdateItem": 1}
    with pytest.raises(MlflowException, match="alias champion not found") as excinfo:
        reg.get_model_version_by_alias("churn", "champion")
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"


def test_alias_on_a_missing_version_is_an_error_and_writes_nothing(reg):
    reg.create_registered_model("churn")
    reg.create_model_version("churn", "s3://b/m")
    reg.delete_model_version("churn", 1)
    before = all_items(reg)
    for version in (1, 2):
        with pytest.raises(MlflowException) as excinfo:
            reg.set_registered_model_alias("churn", "champion", version)
        assert error_code(excinfo) == "RESOURCE_DOES_NOT_EXIST"
    assert all_items(reg) == before


@pytest.mark.parametrize("alias", ["latest", "LATEST", "v1", "bad alias!", ""])
def test_reserved_or_malformed_alias_is_invalid_parameter_value(reg, alias):
    reg.create_registered_model("churn")
    reg.create_model_version("churn", "s3://b/m")
    with pytest.raises(MlflowException) as excinfo:
        reg.set_registered_model_alias("churn", alias, 1)
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"
