"""Webhook delivery reads the store's webhook list at most once per few seconds: the list is
cached for `WEBHOOK_CACHE_SECONDS`, and a create, update or delete through the same store
drops it at once (counted DynamoDB requests; a fake clock moves time)."""

from __future__ import annotations

import pytest
from mlflow.entities.webhook import WebhookAction, WebhookEntity, WebhookEvent, WebhookStatus
from registry_support import calls

import store.registry.webhooks as webhooks
from store.webhooks.delivery import deliver_webhook
from store.webhooks.guard import ALLOW_NETWORKS_ENV

CREATED = WebhookEvent(WebhookEntity.MODEL_VERSION, WebhookAction.CREATED)


@pytest.fixture(autouse=True)
def loopback_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_NETWORKS_ENV, "127.0.0.0/8")  # webhooks stay disabled: never sent


def _names(reg):
    return [w.name for w in reg.list_webhooks_by_event(CREATED, max_results=1000)]


def test_deliveries_share_one_listing_until_a_change_or_the_bound(reg, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(webhooks, "monotonic", lambda: now[0])
    hook = reg.create_webhook("a", "http://127.0.0.1:9/a", [CREATED], status=WebhookStatus.DISABLED)
    assert calls(reg, _names, reg) == (["a"], {"Query": 1})
    for _ in range(3):
        _, requests = calls(reg, deliver_webhook, event=CREATED, payload={}, store=reg)
        assert requests == {}
    reg.update_webhook(hook.webhook_id, name="b")
    assert calls(reg, _names, reg) == (["b"], {"Query": 1})
    reg.create_webhook("c", "http://127.0.0.1:9/c", [CREATED], status=WebhookStatus.DISABLED)
    assert sorted(calls(reg, _names, reg)[0]) == ["b", "c"]
    reg.delete_webhook(hook.webhook_id)
    assert calls(reg, _names, reg) == (["c"], {"Query": 1})
    now[0] += webhooks.WEBHOOK_CACHE_SECONDS - 0.5
    assert calls(reg, _names, reg) == (["c"], {})
    now[0] += 1.0
    assert calls(reg, _names, reg) == (["c"], {"Query": 1})


def test_the_api_listing_is_never_cached(reg):
    reg.create_webhook("a", "http://127.0.0.1:9/a", [CREATED], status=WebhookStatus.DISABLED)
    _names(reg)
    _, requests = calls(reg, reg.list_webhooks)
    assert requests == {"Query": 1}
