"""Registry webhooks on DynamoDB against MLflow's SqlAlchemyStore, and the outbound guard.

CRUD, listing order and pages, by-event listing and errors equal the SQL store's; secrets are
sealed at rest. URLs and connections are held to the guard: loopback, link-local and private
destinations only inside the administrator's networks, `http` only there.
"""

from __future__ import annotations

import uuid

import pytest
from mlflow.entities.webhook import WebhookAction, WebhookEntity, WebhookEvent, WebhookStatus
from mlflow.exceptions import MlflowException
from mlflow.store.model_registry import sqlalchemy_store
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore
from store_support import Clock

import store.registry.core
from store.keys import webhook_key
from store.registry import DynamoRegistryStore
from store.webhooks.guard import ALLOW_NETWORKS_ENV

CREATED = WebhookEvent(WebhookEntity.MODEL_VERSION, WebhookAction.CREATED)
TAG_SET = WebhookEvent(WebhookEntity.MODEL_VERSION_TAG, WebhookAction.SET)
ALIAS = WebhookEvent(WebhookEntity.MODEL_VERSION_ALIAS, WebhookAction.CREATED)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(store.registry.core, "get_current_time_millis", fake)
    monkeypatch.setattr(sqlalchemy_store, "get_current_time_millis", fake)
    return fake


@pytest.fixture
def loopback_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_NETWORKS_ENV, "127.0.0.0/8")
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")  # for the SQL store only


@pytest.fixture
def oracle(tmp_path) -> SqlAlchemyStore:
    return SqlAlchemyStore(f"sqlite:///{tmp_path}/registry.db")


@pytest.fixture
def ours(dynalite_endpoint: str, clock: Clock) -> DynamoRegistryStore:
    host = dynalite_endpoint.removeprefix("http://")
    return DynamoRegistryStore(f"dynamodb://{host}/webhooks-{uuid.uuid4().hex[:8]}")


def view(webhook) -> tuple:
    return (
        webhook.name,
        webhook.url,
        sorted(str(e) for e in webhook.events),
        webhook.description,
        webhook.status,
        webhook.creation_timestamp,
        webhook.last_updated_timestamp,
    )


def outcome(call):
    try:
        result = call()
    except MlflowException as exc:
        return ("error", exc.error_code, exc.message)
    if result is None:
        return None
    if isinstance(result, list):
        return [view(w) for w in result]
    return view(result)


def walk(store, lister, size: int) -> list[tuple]:
    seen, token = [], None
    while True:
        page = lister(store)(max_results=size, page_token=token)
        seen.extend(view(w) for w in page)
        token = page.token
        if not token:
            return seen


def test_webhooks_behave_as_in_the_sql_store(ours, oracle, clock, loopback_allowed):
    ids: dict[str, list[str]] = {"ours": [], "oracle": []}
    for index in range(7):
        clock.now += 1000
        events = [CREATED] if index % 2 else [TAG_SET, ALIAS]
        for name, target in (("ours", ours), ("oracle", oracle)):
            made = target.create_webhook(
                f"hook-{index}", f"https://127.0.0.1/{index}", events,
                description=None if index % 3 else f"d{index}", secret=f"s{index}",
            )  # fmt: skip
            ids[name].append(made.webhook_id)
    assert outcome(lambda: ours.get_webhook(ids["ours"][2])) == outcome(
        lambda: oracle.get_webhook(ids["oracle"][2])
    )
    for size in (1, 2, 3, 7, 100):
        assert walk(ours, lambda s: s.list_webhooks, size) == walk(
            oracle, lambda s: s.list_webhooks, size
        )
        for event in (CREATED, ALIAS):
            lister = lambda s, e=event: lambda **kw: s.list_webhooks_by_event(e, **kw)  # noqa: E731
            assert walk(ours, lister, size) == walk(oracle, lister, size)
    clock.now += 1000
    changes = [
        {"name": "renamed", "events": [ALIAS], "status": WebhookStatus.DISABLED},
        {"url": "https://127.0.0.2/x", "description": "new"},
        {"name": "bad name!"},
        {"url": "ftp://127.0.0.1/x"},
        {"events": []},
    ]
    for change in changes:
        assert outcome(lambda c=change: ours.update_webhook(ids["ours"][1], **c)) == outcome(
            lambda c=change: oracle.update_webhook(ids["oracle"][1], **c)
        )
    assert outcome(lambda: ours.delete_webhook(ids["ours"][3])) == outcome(
        lambda: oracle.delete_webhook(ids["oracle"][3])
    )
    for call in ("get_webhook", "delete_webhook"):
        mine = outcome(lambda c=call: getattr(ours, c)(ids["ours"][3]))
        theirs = outcome(lambda c=call: getattr(oracle, c)(ids["oracle"][3]))
        assert mine[:2] == theirs[:2] == ("error", "RESOURCE_DOES_NOT_EXIST")
    assert walk(ours, lambda s: s.list_webhooks, 2) == walk(oracle, lambda s: s.list_webhooks, 2)
    for bad in ({"max_results": 0}, {"max_results": 1001}):
        assert outcome(lambda b=bad: ours.list_webhooks(**b)) == outcome(
            lambda b=bad: oracle.list_webhooks(**b)
        )


def test_the_secret_is_sealed_at_rest(ours, loopback_allowed):
    made = ours.create_webhook("sealed", "https://127.0.0.1/h", [CREATED], secret="hunter2")
    item = ours._table.get(*webhook_key(made.webhook_id))
    assert item["secret"] != "hunter2" and "hunter2" not in str(item)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://127.0.0.1/h", "'127.0.0.1' resolves to 127.0.0.1"),
        ("https://169.254.169.254/latest", "'169.254.169.254' resolves to 169.254.169.254"),
        ("https://10.1.2.3/h", "'10.1.2.3' resolves to 10.1.2.3"),
        ("https://[::1]/h", "'::1' resolves to ::1"),
        ("https://[::ffff:127.0.0.1]/h", "resolves to ::ffff:7f00:1"),
        ("https://localhost/h", "'localhost' resolves to"),
        ("http://8.8.8.8/h", "Invalid webhook URL scheme: 'http'. Allowed schemes are: https."),
        ("ftp://8.8.8.8/h", "Invalid webhook URL scheme: 'ftp'"),
        ("https://0177.0.0.1/h", "is not a canonical IP address literal"),
    ],
)
def test_urls_outside_the_allowed_networks_are_refused(ours, monkeypatch, url, message):
    monkeypatch.delenv(ALLOW_NETWORKS_ENV, raising=False)
    with pytest.raises(MlflowException) as info:
        ours.create_webhook("refused", url, [CREATED])
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert message in info.value.message
    assert list(ours.list_webhooks()) == []


def test_an_allowed_network_admits_its_addresses_and_http_only_there(ours, monkeypatch):
    monkeypatch.setenv(ALLOW_NETWORKS_ENV, "127.0.0.1/32")
    assert ours.create_webhook("local", "http://127.0.0.1:9/h", [CREATED]).url.startswith("http:")
    for url in ("http://127.0.0.2/h", "https://169.254.169.254/h"):
        with pytest.raises(MlflowException):
            ours.create_webhook("other", url, [CREATED])
