"""The DynamoDB registry store against MLflow's SqlAlchemyStore on sqlite, the oracle.

Seeded random workloads (models, prompts, versions, tags, aliases, stages, renames, deletions)
run on both stores with one shared clock; every call must give the same result or the same
MLflow error, and generated searches (filters, orders, page sizes) must return the same pages
when walked to the end, each page costing a bounded number of DynamoDB requests.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable

import pytest
from mlflow.entities.model_registry import ModelVersionTag, RegisteredModelTag
from mlflow.entities.webhook import WebhookEvent
from mlflow.exceptions import MlflowException
from mlflow.store.model_registry import sqlalchemy_store
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore
from store_support import Clock

import store.registry.core
from store.registry import DynamoRegistryStore

PROMPT = "mlflow.prompt.is_prompt"
NAMES = ["alpha", "Alpha", "beta", "beta_2", "gamma-x", "delta", "prompt_a", "Prompt_b"]
RUNS = ["run1", "run2", "run3", None]
SOURCES = ["s3://bucket/a", "s3://bucket/b", "gs://other/c"]
TAG_KEYS = ["k1", "k2", "team"]
TAG_VALUES = ["v1", "V1", "prod", "dev", "true"]
ALIASES = ["champion", "challenger", "prod"]
STAGES = ["None", "Staging", "Production", "Archived", "staging", "bogus"]
PATTERNS = ["%a%", "a%", "A%", "%_2", "beta%", "%", "_lpha", "%X", "%x", "pr%", "%1"]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(store.registry.core, "get_current_time_millis", fake)
    monkeypatch.setattr(sqlalchemy_store, "get_current_time_millis", fake)
    return fake


@pytest.fixture
def oracle(tmp_path) -> SqlAlchemyStore:
    return SqlAlchemyStore(f"sqlite:///{tmp_path}/registry.db")


@pytest.fixture
def ours(dynalite_endpoint: str, clock: Clock) -> DynamoRegistryStore:
    # dynalite, not moto: moto re-sorts the whole table on every Query.
    host = dynalite_endpoint.removeprefix("http://")
    return DynamoRegistryStore(f"dynamodb://{host}/differential-{uuid.uuid4().hex[:8]}")


# ---- views that must be equal -------------------------------------------------------------------


def version_view(mv) -> tuple:
    return (
        mv.name,
        int(mv.version),
        mv.creation_timestamp,
        mv.last_updated_timestamp,
        mv.description,
        mv.user_id,
        mv.current_stage,
        mv.source,
        mv.run_id,
        mv.status,
        mv.status_message,
        tuple(sorted(mv.tags.items())),
        mv.run_link,
        tuple(sorted(mv.aliases)),
    )


def model_view(rm) -> tuple:
    return (
        rm.name,
        rm.creation_timestamp,
        rm.last_updated_timestamp,
        rm.description,
        tuple(sorted(rm._tags.items())),
        tuple(sorted((alias, int(v)) for alias, v in rm.aliases.items())),
        tuple(sorted(version_view(v) for v in rm.latest_versions or [])),
    )


def view(result):
    if result is None:
        return None
    if isinstance(result, list):
        return [view(r) for r in result]
    if hasattr(result, "latest_versions"):
        return model_view(result)
    if hasattr(result, "current_stage"):
        return version_view(result)
    return result


def outcome(call: Callable, *, messages: bool = False):
    try:
        return ("ok", view(call()))
    except MlflowException as e:
        return ("error", e.error_code, e.message if messages else None)


# ---- workload -----------------------------------------------------------------------------------


def random_operation(rng: random.Random, highest: dict[str, int]) -> tuple[str, tuple]:
    name = rng.choice(NAMES)
    version = rng.randint(1, highest.get(name, 0) + 1)
    operations = [
        (6, "create_registered_model", lambda: (name, _model_tags(rng, name), _text(rng))),
        (12, "create_model_version", lambda: (name, *_version_args(rng, name))),
        (3, "set_registered_model_tag", lambda: (name, RegisteredModelTag(*_tag(rng)))),
        (2, "delete_registered_model_tag", lambda: (name, rng.choice(TAG_KEYS))),
        (4, "set_model_version_tag", lambda: (name, version, ModelVersionTag(*_tag(rng)))),
        (2, "delete_model_version_tag", lambda: (name, version, rng.choice(TAG_KEYS))),
        (4, "set_registered_model_alias", lambda: (name, rng.choice(ALIASES), version)),
        (2, "delete_registered_model_alias", lambda: (name, rng.choice(ALIASES))),
        (
            6,
            "transition_model_version_stage",
            lambda: (name, version, rng.choice(STAGES), rng.random() < 0.4),
        ),
        (2, "update_registered_model", lambda: (name, _text(rng))),
        (2, "update_model_version", lambda: (name, version, _text(rng))),
        (3, "delete_model_version", lambda: (name, version)),
        (1, "delete_registered_model", lambda: (name,)),
        (2, "rename_registered_model", lambda: (name, rng.choice(NAMES))),
        (2, "get_model_version_by_alias", lambda: (name, rng.choice([*ALIASES, "latest"]))),
        (2, "get_latest_versions", lambda: (name, rng.choice([None, ["Production"], []]))),
        (2, "get_registered_model", lambda: (name,)),
        (2, "get_model_version", lambda: (name, version)),
        (1, "get_model_version_download_uri", lambda: (name, version)),
    ]
    weights = [w for w, _, _ in operations]
    _, method, make_args = rng.choices(operations, weights=weights)[0]
    return method, make_args()


def _model_tags(rng: random.Random, name: str) -> list[RegisteredModelTag]:
    tags = [RegisteredModelTag(*_tag(rng)) for _ in range(rng.randint(0, 2))]
    if name.lower().startswith("prompt"):
        tags.append(RegisteredModelTag(PROMPT, "true"))
    return tags


def _version_args(rng: random.Random, name: str) -> tuple:
    tags = [ModelVersionTag(*_tag(rng)) for _ in range(rng.randint(0, 2))]
    if name.lower().startswith("prompt"):
        tags.append(ModelVersionTag(PROMPT, "true"))
    return rng.choice(SOURCES), rng.choice(RUNS), tags, None, _text(rng)


def _tag(rng: random.Random) -> tuple[str, str]:
    key = PROMPT if rng.random() < 0.04 else rng.choice(TAG_KEYS)  # a model turns prompt
    return key, rng.choice(TAG_VALUES)


def _text(rng: random.Random) -> str | None:
    return rng.choice([None, "first", "second"])


# ---- searches -----------------------------------------------------------------------------------


def _string_clause(rng: random.Random, key: str, values: list[str], lists: bool) -> str:
    value = rng.choice(values)
    options = [
        f"{key} = '{value}'",
        f"{key} != '{value}'",
        f"{key} LIKE '{rng.choice(PATTERNS)}'",
        f"{key} ILIKE '{rng.choice(PATTERNS)}'",
    ]
    if lists:
        picked = ", ".join(f"'{v}'" for v in rng.sample(values, 2))
        options += [f"{key} IN ({picked})", f"{key} NOT IN ({picked})"]
    return rng.choice(options)


def _tag_clause(rng: random.Random) -> str:
    key = rng.choice([*TAG_KEYS, f"`{PROMPT}`"])
    value = rng.choice(["true", "false", *TAG_VALUES])
    return rng.choice(
        [
            f"tags.{key} = '{value}'",
            f"tag.{key} != '{value}'",
            f"tags.{key} LIKE '{rng.choice(PATTERNS)}'",
            f"tags.{key} ILIKE '{rng.choice(PATTERNS)}'",
        ]
    )


def model_filter(rng: random.Random) -> str | None:
    clauses = []
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        kind = rng.random()
        if kind < 0.5:
            clauses.append(_string_clause(rng, "name", NAMES, lists=True))
        elif kind < 0.95:
            clauses.append(_tag_clause(rng))
        else:
            clauses.append(rng.choice(["name > 'a'", "tags.k1 IN ('v1')", "run_id = 'x'"]))
    return " AND ".join(clauses) or None


def version_filter(rng: random.Random) -> str | None:
    runs = [r for r in RUNS if r]
    clauses = []
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        kind = rng.random()
        if kind < 0.25:
            clauses.append(_string_clause(rng, "name", NAMES, lists=True))
        elif kind < 0.45:
            op = rng.choice([">", ">=", "<", "<=", "=", "!="])
            clauses.append(f"version_number {op} {rng.randint(0, 6)}")
        elif kind < 0.6:
            clauses.append(_string_clause(rng, "run_id", runs, lists=True))
        elif kind < 0.7:
            clauses.append(_string_clause(rng, "source_path", SOURCES, lists=False))
        elif kind < 0.95:
            clauses.append(_tag_clause(rng))
        else:
            clauses.append(
                rng.choice(
                    ["version_number IN (1)", "source_path IN ('a')", "version_number = 1.5"]
                )
            )
    return " AND ".join(clauses) or None


def model_order(rng: random.Random) -> list[str] | None:
    keys = ["name", "name ASC", "name DESC", "timestamp DESC", "last_updated_timestamp ASC"]
    return rng.choice([None, [], rng.sample(keys, rng.randint(1, 2))])


def version_order(rng: random.Random) -> list[str] | None:
    keys = ["name", "version_number", "creation_timestamp", "last_updated_timestamp"]
    picked = [f"{k} {rng.choice(['ASC', 'DESC'])}" for k in rng.sample(keys, rng.randint(1, 3))]
    return rng.choice([None, [], picked])


def walk(search: Callable, **kwargs) -> list:
    """Every page of a search, walked to the end (tokens are store-specific, pages are not)."""
    pages, token = [], None
    for _ in range(100):
        page = search(page_token=token, **kwargs)
        pages.append(view(page.to_list()))
        token = page.token
        if not token:
            return pages
    raise AssertionError("search did not end")


def walk_counted(reg: DynamoRegistryStore, search: Callable, **kwargs) -> list:
    """`walk`, asserting that a page costs a few DynamoDB requests, never one per row: models,
    versions (or one index range per pinned run id), latest versions, and the versions of a
    model flagged as holding prompt versions."""
    pages, token = [], None
    for _ in range(100):
        reg.table.round_trips.reset()
        page = search(page_token=token, **kwargs)
        assert reg.table.round_trips.total() <= 6, reg.table.round_trips.by_operation()
        pages.append(view(page.to_list()))
        token = page.token
        if not token:
            return pages
    raise AssertionError("search did not end")


def search_outcome(call: Callable):
    try:
        return ("ok", call())
    except MlflowException as e:
        return ("error", e.error_code, e.message)


# ---- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_random_workload_matches_sqlalchemy_store(seed, ours, oracle, clock):
    rng = random.Random(seed)
    highest: dict[str, int] = {}
    for step in range(150):
        if rng.random() < 0.75:  # sometimes calls share a timestamp: orders must break ties
            clock.now += 1000
        method, args = random_operation(rng, highest)
        expected = outcome(lambda m=method, a=args: getattr(oracle, m)(*a))
        actual = outcome(lambda m=method, a=args: getattr(ours, m)(*a))
        assert actual == expected, f"step {step}: {method}{args}"
        if method == "create_model_version" and expected[0] == "ok":
            highest[args[0]] = max(highest.get(args[0], 0), expected[1][1])

    for name in NAMES:
        assert outcome(lambda n=name: ours.get_registered_model(n)) == outcome(
            lambda n=name: oracle.get_registered_model(n)
        )

    searches = [
        ("search_registered_models", model_filter, model_order, 5),
        ("search_model_versions", version_filter, version_order, 6),
    ]
    for call, filters, orders, largest_page in searches:
        for _ in range(40):
            kwargs = {"filter_string": filters(rng), "order_by": orders(rng)}
            kwargs["max_results"] = rng.randint(1, largest_page)
            theirs, mine = getattr(oracle, call), getattr(ours, call)
            expected = search_outcome(lambda k=kwargs, f=theirs: walk(f, **k))
            actual = search_outcome(lambda k=kwargs, f=mine: walk_counted(ours, f, **k))
            assert actual == expected, kwargs


def test_prompt_searches_match_sqlalchemy_store(ours, oracle, clock):
    for reg in (ours, oracle):
        reg.create_prompt("greet", description="hello", tags={"lang": "en"})
        reg.create_prompt_version("greet", "Hi {{name}}")
        reg.create_prompt_version("greet", [{"role": "user", "content": "{{q}}"}])
        reg.create_registered_model("model")
        reg.create_model_version("model", "s3://b/m")
    for filter_string in (None, "name LIKE 'gr%'", "tags.lang = 'en'"):
        assert [p.name for p in ours.search_prompts(filter_string)] == [
            p.name for p in oracle.search_prompts(filter_string)
        ]
    ours_versions = ours.search_prompt_versions("greet")
    oracle_versions = oracle.search_prompt_versions("greet")
    assert [(v.version, v.template) for v in ours_versions] == [
        (v.version, v.template) for v in oracle_versions
    ]
    assert view(ours.search_registered_models().to_list()) == view(
        oracle.search_registered_models().to_list()
    )


def test_registered_model_sources_match_sqlalchemy_store(ours, oracle, clock):
    outcomes = []
    for reg in (ours, oracle):
        reg.create_registered_model("base")
        reg.create_model_version("base", "s3://bucket/base/1", run_id="run1")
        reg.create_registered_model("copy")
        copied = reg.copy_model_version(reg.get_model_version("base", 1), "copy")
        outcomes.append(
            (
                view(copied),
                reg.get_model_version_download_uri("copy", copied.version),
                outcome(lambda r=reg: r.create_model_version("copy", "models:/base/7")),
            )
        )
    assert outcomes[0][:2] == outcomes[1][:2]
    assert outcomes[0][1] == "s3://bucket/base/1"
    assert outcomes[0][2][:2] == outcomes[1][2][:2] == ("error", "INTERNAL_ERROR")


def test_a_prompt_tag_on_another_version_hides_a_run_search_hit(ours, oracle, clock):
    for reg in (ours, oracle):
        reg.create_registered_model("m")
        reg.create_model_version("m", "s3://b/1", run_id="r1")
        reg.create_model_version("m", "s3://b/2")
        reg.create_registered_model("other")
        reg.create_model_version("other", "s3://b/3", run_id="r1")
    before = view(oracle.search_model_versions("run_id = 'r1'").to_list())
    assert view(ours.search_model_versions("run_id = 'r1'").to_list()) == before
    assert len(before) == 2
    for reg in (ours, oracle):
        reg.set_model_version_tag("m", 2, ModelVersionTag(PROMPT, "true"))
    expected = view(oracle.search_model_versions("run_id IN ('r1', 'r9')").to_list())
    ours.table.round_trips.reset()
    assert view(ours.search_model_versions("run_id IN ('r1', 'r9')").to_list()) == expected
    assert [v[0] for v in expected] == ["other"]
    # models, one range per run id, and the versions of the flagged model
    assert ours.table.round_trips.by_operation() == {"Query": 4}


def test_version_calls_on_a_deleted_model_answer_as_sqlalchemy_store(ours, oracle, clock):
    calls = [
        lambda r: r.get_model_version("gone", 1),
        lambda r: r.update_model_version("gone", 1, "d"),
        lambda r: r.transition_model_version_stage("gone", 1, "Staging", False),
        lambda r: r.get_model_version_download_uri("gone", 1),
        lambda r: r.set_model_version_tag("gone", 1, ModelVersionTag("k", "v")),
        lambda r: r.delete_model_version_tag("gone", 1, "k"),
        lambda r: r.set_registered_model_alias("gone", "champion", 1),
        lambda r: r.delete_model_version("gone", 1),
        lambda r: r.get_model_version_by_alias("gone", "champion"),
        lambda r: r.get_latest_versions("gone"),
    ]
    answers = []
    for reg in (ours, oracle):
        reg.create_registered_model("gone")
        reg.create_model_version("gone", "s3://bucket/gone/1")
        reg.delete_registered_model("gone")
        answers.append([outcome(lambda c=c, r=reg: c(r), messages=True) for c in calls])
    assert answers[0] == answers[1]
    assert answers[1][0] == (
        "error",
        "RESOURCE_DOES_NOT_EXIST",
        "Model Version (name=gone, version=1) not found",
    )


@pytest.mark.parametrize(
    "token", ["garbage", "bm90IGpzb24=", "eyJvZmZzZXQiOiAwfQ==", "eyJvZmZzZXQiOiAieCJ9"]
)
def test_invalid_page_tokens_answer_as_sqlalchemy_store(ours, oracle, clock, token):
    calls = [
        lambda r: r.search_registered_models(page_token=token),
        lambda r: r.search_model_versions(page_token=token),
        lambda r: r.list_webhooks(page_token=token),
        lambda r: r.list_webhooks_by_event(
            WebhookEvent("model_version", "created"), page_token=token
        ),
    ]
    answers = [
        [outcome(lambda c=c, r=reg: c(r), messages=True) for c in calls] for reg in (ours, oracle)
    ]
    assert answers[0] == answers[1]
    assert all(a[:2] == ("error", "INVALID_PARAMETER_VALUE") for a in answers[1])
