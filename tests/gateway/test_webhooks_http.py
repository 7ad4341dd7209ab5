"""Registry webhooks through the gateway and a real handler tier: administrators only, and
delivered to a loopback receiver only when the handler tier was started allowing its network.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from gw_support import handler_tier
from webhook_receiver import Receiver, expected_signature

ADMINS = ("admins",)
WEBHOOKS = "/api/2.0/mlflow/webhooks"
EVENTS = [{"entity": "MODEL_VERSION", "action": "CREATED"}]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def allowing_tier(bindings_table, tmp_path_factory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("webhooks-allowed")
    with handler_tier(bindings_table, root, webhook_networks=("127.0.0.1/32",)) as url:
        yield url


@pytest.fixture(scope="module")
def refusing_tier(bindings_table, tmp_path_factory) -> Iterator[str]:
    with handler_tier(bindings_table, tmp_path_factory.mktemp("webhooks-refused")) as url:
        yield url


def headers(gateway, user: str, groups: tuple[str, ...] = ()) -> dict:
    return {"Authorization": f"Bearer {gateway.idp.mint(user, groups)}"}


def test_only_administrators_manage_webhooks(start_gateway, allowing_tier, receiver):
    gateway = start_gateway(allowing_tier, admin_groups=ADMINS)
    body = {"name": f"hook-{uuid.uuid4().hex[:6]}", "url": receiver.url, "events": EVENTS}
    with gateway.client() as client:
        model = f"m-{uuid.uuid4().hex[:6]}"
        made = client.post(  # its creator manages the model
            "/api/2.0/mlflow/registered-models/create",
            json={"name": model},
            headers=headers(gateway, "mona"),
        )
        assert made.status_code == 200, made.text
        refused = [
            client.post(WEBHOOKS, json=body, headers=headers(gateway, user)).status_code
            for user in ("mona", "erin", "rita")
        ]
        created = client.post(WEBHOOKS, json=body, headers=headers(gateway, "ada", ADMINS))
        assert created.status_code == 200, created.text
        webhook_id = created.json()["webhook"]["webhook_id"]
        one = f"{WEBHOOKS}/{webhook_id}"
        reads = [
            client.get(one, headers=headers(gateway, "mona")).status_code,
            client.post(f"{one}/test", json={}, headers=headers(gateway, "mona")).status_code,
            client.delete(one, headers=headers(gateway, "mona")).status_code,
        ]
        listed = client.get(WEBHOOKS, headers=headers(gateway, "ada", ADMINS))
        hidden = client.get(WEBHOOKS, headers=headers(gateway, "mona"))
    assert refused == [403, 403, 403]
    assert created.status_code == 200, created.text
    assert reads == [403, 403, 403]
    assert hidden.status_code == 200 and hidden.json() == {}
    assert webhook_id in [w["webhook_id"] for w in listed.json()["webhooks"]]


def test_a_test_delivery_reaches_an_allowed_loopback_receiver(
    start_gateway, allowing_tier, receiver
):
    gateway = start_gateway(allowing_tier, admin_groups=ADMINS)
    admin = headers(gateway, "ada", ADMINS)
    body = {"name": "signed", "url": receiver.url, "events": EVENTS, "secret": "s3cret"}
    with gateway.client() as client:
        created = client.post(WEBHOOKS, json=body, headers=admin)
        webhook = created.json()["webhook"]
        before = len(receiver.received)
        tested = client.post(f"{WEBHOOKS}/{webhook['webhook_id']}/test", json={}, headers=admin)
    assert "secret" not in webhook
    assert tested.status_code == 200, tested.text
    assert tested.json()["result"]["success"] is True
    [(sent_headers, sent_body)] = receiver.received[before:]
    assert sent_headers["X-MLflow-Signature"] == expected_signature(
        "s3cret", sent_headers, sent_body
    )


def test_an_unknown_event_is_refused_before_mlflow_fails_on_it(start_gateway, allowing_tier):
    gateway = start_gateway(allowing_tier, admin_groups=ADMINS)
    body = {"name": "odd", "url": "https://127.0.0.1/", "events": [{"entity": "model_version"}]}
    with gateway.client() as client:
        answer = client.post(WEBHOOKS, json=body, headers=headers(gateway, "ada", ADMINS))
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_loopback_is_refused_unless_the_network_is_allowed(
    start_gateway, allowing_tier, refusing_tier, receiver
):
    allowing = start_gateway(allowing_tier, admin_groups=ADMINS)
    refusing = start_gateway(refusing_tier, admin_groups=ADMINS)
    body = {"name": "local", "url": receiver.url, "events": EVENTS}
    with allowing.client() as client:
        webhook_id = client.post(WEBHOOKS, json=body, headers=headers(allowing, "ada", ADMINS))
        webhook_id = webhook_id.json()["webhook"]["webhook_id"]
    before = len(receiver.received)
    admin = headers(refusing, "ada", ADMINS)
    with refusing.client() as client:
        created = client.post(WEBHOOKS, json=body, headers=admin)
        tested = client.post(f"{WEBHOOKS}/{webhook_id}/test", json={}, headers=admin)
    assert created.status_code == 400
    assert created.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "non-public IP address" in created.json()["message"]
    assert tested.status_code == 200 and tested.json()["result"]["success"] is False
    assert len(receiver.received) == before
