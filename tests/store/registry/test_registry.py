"""The DynamoDB model registry store on moto: behaviour, MLflow's errors, round trips."""

from __future__ import annotations

import uuid

import pytest
from mlflow.entities.model_registry import ModelVersionTag, RegisteredModelTag
from mlflow.exceptions import MlflowException
from store_support import Clock

import store.registry.core
from store.handler.identity import Principal, bind_principal
from store.registry import DynamoRegistryStore

PROMPT_TAG = "mlflow.prompt.is_prompt"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(store.registry.core, "get_current_time_millis", fake)
    return fake


@pytest.fixture
def uri(aws_env: None) -> str:
    return f"dynamodb://us-east-1/registry-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def reg(uri: str, clock: Clock) -> DynamoRegistryStore:
    return DynamoRegistryStore(uri)


def calls(reg: DynamoRegistryStore, fn, *args, **kwargs):
    """Run one store call; return its result and the DynamoDB requests it made."""
    reg.table.round_trips.reset()
    result = fn(*args, **kwargs)
    return result, reg.table.round_trips.by_operation()


def all_items(reg: DynamoRegistryStore) -> list[dict]:
    client = reg.table._client  # test-only full read of the table
    return client.scan(TableName=reg.table.name)["Items"]


def error_code(excinfo: pytest.ExceptionInfo) -> str:
    return excinfo.value.error_code


# ---- registered models ----------------------------------------------------------------------


def test_create_and_get_registered_model(reg):
    created, trips = calls(
        reg, reg.create_registered_model, "churn", [RegisteredModelTag("team", "a")], "d"
    )
    assert trips == {"PutItem": 1}
    got, trips = calls(reg, reg.get_registered_model, "churn")
    assert trips == {"GetItem": 1}
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
    assert trips == {"UpdateItem": 1}
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
    assert trips == {"UpdateItem": 1, "PutItem": 1}
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


def test_a_version_lost_in_a_crash_leaves_a_gap_and_no_phantom(reg, clock, monkeypatch):
    reg.create_registered_model("churn")
    reg.create_model_version("churn", "s3://b/m")
    _crash_on(monkeypatch, reg, "put")
    with pytest.raises(RuntimeError):
        reg.create_model_version("churn", "s3://b/lost")
    clock.now += 61_000
    assert [v.version for v in reg.get_registered_model("churn").latest_versions] == [1]
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


# ---- rename -----------------------------------------------------------------------------------


def _populated(reg) -> None:
    reg.create_registered_model("old", tags=[RegisteredModelTag("k", "v")], description="d")
    for _ in range(3):
        reg.create_model_version("old", "s3://b/m", tags=[ModelVersionTag("t", "1")])
    reg.set_registered_model_alias("old", "champion", 2)


def test_rename_moves_versions_aliases_and_tags(reg, clock):
    _populated(reg)
    clock.now += 1000
    renamed, trips = calls(reg, reg.rename_registered_model, "old", "new")
    assert trips == {"GetItem": 1, "PutItem": 1, "DeleteItem": 1, "Query": 1, "UpdateItem": 4}
    assert (renamed.name, renamed.tags, renamed.aliases) == ("new", {"k": "v"}, {"champion": 2})
    mv = reg.get_model_version_by_alias("new", "champion")
    assert (mv.name, mv.version, mv.tags, mv.last_updated_timestamp) == (
        "new",
        2,
        {"t": "1"},
        clock.now,
    )
    assert reg.create_model_version("new", "s3://b/m").version == 4
    with pytest.raises(MlflowException, match="name=old not found"):
        reg.get_registered_model("old")
    assert [m.name for m in reg.search_registered_models()] == ["new"]
    assert {v.name for v in reg.search_model_versions()} == {"new"}


def test_rename_to_a_taken_name_fails_and_keeps_both(reg):
    _populated(reg)
    reg.create_registered_model("taken")
    with pytest.raises(MlflowException) as excinfo:
        reg.rename_registered_model("old", "taken")
    assert error_code(excinfo) == "RESOURCE_ALREADY_EXISTS"
    assert sorted(m.name for m in reg.search_registered_models()) == ["old", "taken"]
    assert reg.get_registered_model("taken").latest_versions == []


def _crash_on(monkeypatch, reg, method: str) -> None:
    """Make the table's next `method` call fail as if the process died before sending it."""
    original = getattr(reg.table, method)
    state = {"done": False}

    def failing(*args, **kwargs):
        if not state["done"]:
            state["done"] = True
            raise RuntimeError("process died")
        return original(*args, **kwargs)

    monkeypatch.setattr(reg.table, method, failing)


def test_rename_interrupted_after_the_copy_is_invisible_and_a_retry_finishes(reg, monkeypatch):
    _populated(reg)
    _crash_on(monkeypatch, reg, "delete")
    with pytest.raises(RuntimeError):
        reg.rename_registered_model("old", "new")
    assert [m.name for m in reg.search_registered_models()] == ["old"]
    with pytest.raises(MlflowException, match="name=new not found"):
        reg.get_registered_model("new")
    with pytest.raises(MlflowException) as excinfo:
        reg.create_registered_model("new")  # a rename in flight holds the name
    assert error_code(excinfo) == "RESOURCE_ALREADY_EXISTS"
    assert reg.rename_registered_model("old", "new").aliases == {"champion": 2}
    assert [m.name for m in reg.search_registered_models()] == ["new"]


def test_abandoned_rename_frees_the_name_after_a_minute(reg, clock, monkeypatch):
    _populated(reg)
    _crash_on(monkeypatch, reg, "delete")
    with pytest.raises(RuntimeError):
        reg.rename_registered_model("old", "new")
    clock.now += 61_000
    reg.create_registered_model("new")
    assert sorted(m.name for m in reg.search_registered_models()) == ["new", "old"]
    assert reg.get_registered_model("old").aliases == {"champion": 2}


def test_rename_interrupted_after_the_delete_completes_on_the_next_read(reg, monkeypatch):
    _populated(reg)
    _crash_on(monkeypatch, reg, "update")
    with pytest.raises(RuntimeError):
        reg.rename_registered_model("old", "new")
    assert reg.get_registered_model("new").aliases == {"champion": 2}
    assert [m.name for m in reg.search_registered_models()] == ["new"]


def test_rename_retries_when_the_model_changes_meanwhile(reg, monkeypatch):
    _populated(reg)
    original = reg.table.delete
    state = {"raced": False}

    def racing_delete(pk, sk, **kwargs):
        if not state["raced"]:
            state["raced"] = True  # another writer adds a tag between copy and delete
            reg.set_registered_model_tag("old", RegisteredModelTag("late", "yes"))
        return original(pk, sk, **kwargs)

    monkeypatch.setattr(reg.table, "delete", racing_delete)
    assert reg.rename_registered_model("old", "new").tags == {"k": "v", "late": "yes"}


# ---- search -----------------------------------------------------------------------------------


def test_search_reads_a_constant_number_of_times(reg):
    for i in range(40):
        reg.create_registered_model(f"model-{i:02d}")
        reg.create_model_version(f"model-{i:02d}", "s3://b/m", run_id=f"run-{i % 3}")
    page, trips = calls(reg, reg.search_registered_models, "name LIKE 'model-%'", 10)
    assert trips == {"Query": 1, "BatchGetItem": 1}
    assert [m.name for m in page] == [f"model-{i:02d}" for i in range(10)]
    assert all(len(m.latest_versions) == 1 for m in page)
    versions, trips = calls(reg, reg.search_model_versions, "run_id = 'run-1'")
    assert trips == {"Query": 2}
    assert len(versions) == 13
    one, trips = calls(reg, reg.search_model_versions, "name = 'model-07'")
    assert trips == {"GetItem": 1, "Query": 1}
    assert [v.version for v in one] == [1]


def test_search_pages_walk_to_the_end(reg):
    for i in range(7):
        reg.create_registered_model(f"m{i}")
    names, token = [], None
    while True:
        page = reg.search_registered_models(max_results=3, page_token=token)
        names += [m.name for m in page]
        token = page.token
        if not token:
            break
    assert names == [f"m{i}" for i in range(7)]


def test_tampered_or_foreign_page_token_is_invalid_parameter_value(reg):
    for i in range(3):
        reg.create_registered_model(f"m{i}")
    token = reg.search_registered_models(max_results=1).token
    for bad in (token[:-2] + "xx", "not-a-token"):
        with pytest.raises(MlflowException) as excinfo:
            reg.search_registered_models(max_results=1, page_token=bad)
        assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match="made for another search"):
        reg.search_model_versions(page_token=token)
    with pytest.raises(MlflowException, match="made for another search"):
        reg.search_registered_models(max_results=1, filter_string="name = 'm1'", page_token=token)


@pytest.mark.parametrize(
    ("method", "filter_string"),
    [
        ("search_registered_models", "name > 'a'"),
        ("search_registered_models", "tags.k IN ('a')"),
        ("search_registered_models", "description = 'x'"),
        ("search_model_versions", "version_number = 1.5"),
        ("search_model_versions", "source_path IN ('a')"),
        ("search_model_versions", "name = 'a' OR name = 'b'"),
    ],
)
def test_malformed_search_is_invalid_parameter_value(reg, method, filter_string):
    with pytest.raises(MlflowException) as excinfo:
        getattr(reg, method)(filter_string)
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"


def test_prompts_are_hidden_from_model_searches_unless_asked_for(reg):
    reg.create_registered_model("model")
    reg.create_registered_model("prompt", tags=[RegisteredModelTag(PROMPT_TAG, "true")])
    reg.create_model_version("model", "s3://b/m")
    reg.create_model_version("prompt", "s3://b/p", tags=[ModelVersionTag(PROMPT_TAG, "true")])
    assert [m.name for m in reg.search_registered_models()] == ["model"]
    asked = reg.search_registered_models(f"tags.`{PROMPT_TAG}` = 'true'")
    assert [m.name for m in asked] == ["prompt"]
    assert [v.name for v in reg.search_model_versions()] == ["model"]
    asked = reg.search_model_versions(f"tags.`{PROMPT_TAG}` = 'true'")
    assert [v.name for v in asked] == ["prompt"]


# ---- MLflow integration -------------------------------------------------------------------------


def test_mlflow_builds_the_store_from_a_dynamodb_uri(uri):
    from mlflow.tracking._model_registry.utils import _get_store

    assert isinstance(_get_store(uri), DynamoRegistryStore)


def test_register_and_load_a_prompt(uri, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/tracking.db")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    first = mlflow.genai.register_prompt("greet", "Hello {{name}}!", tags={"lang": "en"})
    second = mlflow.genai.register_prompt("greet", "Hi {{name}}!")
    assert (first.version, second.version) == (1, 2)
    assert mlflow.genai.load_prompt("prompts:/greet/1").format(name="Ada") == "Hello Ada!"
    mlflow.genai.set_prompt_alias("greet", "production", 1)
    assert mlflow.genai.load_prompt("prompts:/greet@production").version == 1
    assert mlflow.genai.load_prompt("prompts:/greet@latest").template == "Hi {{name}}!"
    assert [p.name for p in mlflow.genai.search_prompts()] == ["greet"]
    store = DynamoRegistryStore(uri)
    assert store.search_registered_models().to_list() == []  # a prompt is not a model


def test_calls_the_store_does_not_offer_are_not_implemented(reg):
    from mlflow.entities.webhook import WebhookAction, WebhookEntity, WebhookEvent

    for call in (
        lambda: reg.create_webhook("w", "https://x", []),
        lambda: reg.list_webhooks(),
        lambda: reg.get_webhook("w"),
        lambda: reg.delete_webhook("w"),
    ):
        with pytest.raises(MlflowException) as excinfo:
            call()
        assert error_code(excinfo) == "NOT_IMPLEMENTED"
    event = WebhookEvent(WebhookEntity.MODEL_VERSION, WebhookAction.CREATED)
    assert reg.list_webhooks_by_event(event).to_list() == []


def test_tags_beyond_the_item_limit_are_invalid_parameter_value(dynalite_endpoint, clock):
    # dynalite: moto applies an oversized update before refusing it.
    host = dynalite_endpoint.removeprefix("http://")
    reg = DynamoRegistryStore(f"dynamodb://{host}/registry-{uuid.uuid4().hex[:10]}")
    reg.create_registered_model("churn")
    for i in range(3):
        reg.set_registered_model_tag("churn", RegisteredModelTag(f"k{i}", "x" * 99_000))
    with pytest.raises(MlflowException, match="400 KB") as excinfo:
        for i in range(3, 5):
            reg.set_registered_model_tag("churn", RegisteredModelTag(f"k{i}", "x" * 99_000))
    assert error_code(excinfo) == "INVALID_PARAMETER_VALUE"
    assert len(reg.get_registered_model("churn").tags) == 4


@pytest.fixture
def dynalite_reg(dynalite_endpoint: str) -> DynamoRegistryStore:
    # dynalite: moto is not safe under concurrent writers.
    host = dynalite_endpoint.removeprefix("http://")
    return DynamoRegistryStore(f"dynamodb://{host}/registry-{uuid.uuid4().hex[:10]}")


def test_concurrent_version_creation_allocates_each_number_once(dynalite_reg):
    from concurrent.futures import ThreadPoolExecutor

    dynalite_reg.create_registered_model("churn")
    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = list(
            pool.map(
                lambda _: dynalite_reg.create_model_version("churn", "s3://b/m").version, range(40)
            )
        )
    assert sorted(versions) == list(range(1, 41))
    assert [v.version for v in dynalite_reg.get_latest_versions("churn")] == [40]


def test_concurrent_creation_of_one_name_has_one_winner(dynalite_reg):
    from concurrent.futures import ThreadPoolExecutor

    def create(_):
        try:
            dynalite_reg.create_registered_model("churn")
            return "created"
        except MlflowException as e:
            return e.error_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(create, range(8)))
    assert sorted(outcomes) == ["RESOURCE_ALREADY_EXISTS"] * 7 + ["created"]


def test_concurrent_transitions_leave_a_true_latest_versions_map(dynalite_reg):
    import random
    from concurrent.futures import ThreadPoolExecutor

    dynalite_reg.create_registered_model("churn")
    for _ in range(16):
        dynalite_reg.create_model_version("churn", "s3://b/m")
    rng = random.Random(7)
    plan = [(v, rng.choice(["Staging", "Production", "Archived", "None"])) for v in range(1, 17)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda move: dynalite_reg.transition_model_version_stage("churn", *move, False),
                plan,
            )
        )
    truth: dict[str, int] = {}
    for mv in dynalite_reg.search_model_versions("name = 'churn'"):
        truth[mv.current_stage] = max(truth.get(mv.current_stage, 0), int(mv.version))
    latest, trips = calls(dynalite_reg, dynalite_reg.get_latest_versions, "churn")
    assert {mv.current_stage: mv.version for mv in latest} == truth
    assert trips == {"GetItem": 1, "BatchGetItem": 1}
