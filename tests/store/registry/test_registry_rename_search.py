"""The registry store: renames, searches, MLflow's own use of it, concurrent writers."""

from __future__ import annotations

import uuid

import pytest
from mlflow.entities.model_registry import ModelVersionTag, RegisteredModelTag
from mlflow.exceptions import MlflowException
from registry_support import calls, crash_on, error_code

from store.registry import DynamoRegistryStore

PROMPT_TAG = "mlflow.prompt.is_prompt"


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


def test_rename_interrupted_after_the_copy_is_invisible_and_a_retry_finishes(reg, monkeypatch):
    _populated(reg)
    crash_on(monkeypatch, reg, "delete")
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
    crash_on(monkeypatch, reg, "delete")
    with pytest.raises(RuntimeError):
        reg.rename_registered_model("old", "new")
    clock.now += 61_000
    reg.create_registered_model("new")
    assert sorted(m.name for m in reg.search_registered_models()) == ["new", "old"]
    assert reg.get_registered_model("old").aliases == {"champion": 2}


def test_rename_interrupted_after_the_delete_completes_on_the_next_read(reg, monkeypatch):
    _populated(reg)
    crash_on(monkeypatch, reg, "update")
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


def test_webhooks_are_stored_and_none_subscribes_until_one_is_made(reg):
    from mlflow.entities.webhook import WebhookAction, WebhookEntity, WebhookEvent

    for call, code in (
        (lambda: reg.create_webhook("w", "https://127.0.0.1/", []), "INVALID_PARAMETER_VALUE"),
        (lambda: reg.get_webhook("w"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda: reg.delete_webhook("w"), "RESOURCE_DOES_NOT_EXIST"),
    ):
        with pytest.raises(MlflowException) as excinfo:
            call()
        assert error_code(excinfo) == code
    assert reg.list_webhooks().to_list() == []
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
