"""Webhook delivery through the outbound guard, received by HTTP servers on 127.0.0.1.

A delivery carries MLflow's headers and HMAC signature; it reaches a loopback receiver only
when an administrator allowed that network; a redirect is never followed; and a name that
passed the check but connects to a refused address (DNS rebinding) is refused at connect time.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from mlflow.entities.webhook import WebhookAction, WebhookEntity, WebhookEvent
from webhook_receiver import Receiver, expected_signature

from store.registry import DynamoRegistryStore
from store.webhooks import delivery
from store.webhooks.guard import ALLOW_NETWORKS_ENV, AddressPolicy

CREATED = WebhookEvent(WebhookEntity.MODEL_VERSION, WebhookAction.CREATED)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def store(dynalite_endpoint: str) -> DynamoRegistryStore:
    host = dynalite_endpoint.removeprefix("http://")
    return DynamoRegistryStore(f"dynamodb://{host}/delivery-{uuid.uuid4().hex[:8]}")


def wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_test_delivery_is_signed_and_received_when_loopback_is_allowed(
    store, receiver, monkeypatch
):
    monkeypatch.setenv(ALLOW_NETWORKS_ENV, "127.0.0.1/32")
    webhook = store.create_webhook("local", receiver.url, [CREATED], secret="s3cret")
    result = delivery.test_webhook(store.get_webhook(webhook.webhook_id))
    assert result.success and result.response_status == 200, result.error_message
    [(headers, body)] = receiver.received
    assert headers["X-MLflow-Signature"] == expected_signature("s3cret", headers, body)
    sent = json.loads(body)
    assert (sent["entity"], sent["action"]) == ("model_version", "created")
    assert headers["Content-Type"] == "application/json"


def test_registry_events_are_delivered_to_subscribers(store, receiver, monkeypatch):
    monkeypatch.setenv(ALLOW_NETWORKS_ENV, "127.0.0.1/32")
    store.create_webhook("local", receiver.url, [CREATED])
    delivery.deliver_webhook(event=CREATED, payload={"name": "m", "version": "1"}, store=store)
    assert wait_for(lambda: len(receiver.received) == 1)
    assert json.loads(receiver.received[0][1])["data"] == {"name": "m", "version": "1"}
    assert "X-MLflow-Signature" not in receiver.received[0][0]  # no secret, no signature


def test_nothing_is_delivered_to_loopback_unless_allowed(store, receiver, monkeypatch):
    monkeypatch.setenv(ALLOW_NETWORKS_ENV, "127.0.0.1/32")
    webhook = store.get_webhook(store.create_webhook("local", receiver.url, [CREATED]).webhook_id)
    monkeypatch.delenv(ALLOW_NETWORKS_ENV)  # the administrator withdrew the network
    result = delivery.test_webhook(webhook)
    delivery.deliver_webhook(event=CREATED, payload={}, store=store)
    assert not result.success and "non-public IP address" in result.error_message
    assert not wait_for(lambda: receiver.received, seconds=1.0)


def test_redirects_are_not_followed(store, receiver, monkeypatch):
    monkeypatch.setenv(ALLOW_NETWORKS_ENV, "127.0.0.1/32")
    redirecting = Receiver(status=302, location=receiver.url)
    try:
        webhook = store.create_webhook("hop", redirecting.url, [CREATED])
        result = delivery.test_webhook(store.get_webhook(webhook.webhook_id))
    finally:
        redirecting.close()
    assert len(redirecting.received) == 1
    assert receiver.received == []
    assert not result.success and result.response_status == 302


def test_an_address_that_changed_after_the_check_is_refused_at_connect(
    store, receiver, monkeypatch
):
    monkeypatch.setenv(ALLOW_NETWORKS_ENV, "127.0.0.1/32")
    webhook = store.get_webhook(store.create_webhook("rebind", receiver.url, [CREATED]).webhook_id)
    # the check sees an allowed address; the connection then reaches 127.0.0.1, now refused
    monkeypatch.setattr(AddressPolicy, "check_url", lambda self, url: None)
    monkeypatch.delenv(ALLOW_NETWORKS_ENV)
    result = delivery.test_webhook(webhook)
    assert not result.success and "not allowed here" in result.error_message
    assert receiver.received == []
