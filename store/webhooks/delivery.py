"""Webhook delivery as MLflow 3.17.2 does it, through the outbound guard (guard.py).

Same wire format: `POST <url>` with `{"entity", "action", "timestamp", "data"}`, headers
`X-MLflow-Delivery-Id`, `X-MLflow-Timestamp` and, with a secret,
`X-MLflow-Signature: v1,<base64 HMAC-SHA256(secret, "<delivery id>.<timestamp>.<body>")>`;
the same retries. Unlike MLflow's: redirects are never followed (a 3xx is a failed delivery),
private destinations only inside the administrator's networks, short timeouts, and a test
returns at most 1 KB of the receiver's answer. Deliveries run on a small thread pool after
the registry write: they never delay or fail the API call, and a crash loses pending ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cache

import requests
from mlflow.entities.webhook import Webhook, WebhookEvent, WebhookTestResult
from mlflow.webhooks.constants import (
    WEBHOOK_DELIVERY_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_SIGNATURE_VERSION,
    WEBHOOK_TIMESTAMP_HEADER,
)
from mlflow.webhooks.types import get_example_payload_for_event
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from store.registry.webhook_secrets import open_secret
from store.webhooks.guard import AddressPolicy

_logger = logging.getLogger(__name__)

TIMEOUT = (5.0, 10.0)  # connect, read (seconds)
TEST_BODY_LIMIT = 1024
_pool = ThreadPoolExecutor(max_workers=10, thread_name_prefix="webhook")


def signature(secret: str, delivery_id: str, timestamp: str, body: str) -> str:
    """`v1,<base64 HMAC-SHA256>` over `<delivery id>.<timestamp>.<body>`, as MLflow signs."""
    content = f"{delivery_id}.{timestamp}.{body}".encode()
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    return f"{WEBHOOK_SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def deliver_webhook(*, event: WebhookEvent, payload: dict, store) -> None:
    """Send `event` to every active webhook subscribed to it; never raises."""
    try:
        webhooks = store.list_webhooks_by_event(event, max_results=1000)
    except Exception:
        _logger.exception("Listing the webhooks of %s failed", event)
        return
    for webhook in webhooks:
        if webhook.status.is_active():
            _pool.submit(_deliver_logged, webhook, payload, event)


def test_webhook(webhook: Webhook, event: WebhookEvent | None = None) -> WebhookTestResult:
    """One delivery of an example payload; the receiver's status and up to 1 KB of its body."""
    test_event = event or webhook.events[0]
    try:
        response = send(webhook, get_example_payload_for_event(test_event), test_event)
    except Exception as exc:
        return WebhookTestResult(success=False, error_message=f"Failed to test webhook: {exc!r}")
    return WebhookTestResult(
        success=response.status_code < 300,  # a redirect is not followed: not delivered
        response_status=response.status_code,
        response_body=response.text[:TEST_BODY_LIMIT],
    )


def send(webhook: Webhook, payload: dict, event: WebhookEvent) -> requests.Response:
    policy = AddressPolicy.from_env()
    policy.check_url(webhook.url)  # again: the name may resolve elsewhere by now
    body = json.dumps(
        {
            "entity": event.entity.value,
            "action": event.action.value,
            "timestamp": datetime.now(UTC).isoformat(),
            "data": payload,
        }
    )
    delivery_id, timestamp = str(uuid.uuid4()), str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        WEBHOOK_DELIVERY_ID_HEADER: delivery_id,
        WEBHOOK_TIMESTAMP_HEADER: timestamp,
    }
    if webhook.secret:
        secret = open_secret(webhook.secret, webhook.webhook_id)
        headers[WEBHOOK_SIGNATURE_HEADER] = signature(secret, delivery_id, timestamp, body)
    return _session(policy).post(
        webhook.url, data=body.encode(), headers=headers, timeout=TIMEOUT, allow_redirects=False
    )


def _deliver_logged(webhook: Webhook, payload: dict, event: WebhookEvent) -> None:
    try:
        send(webhook, payload, event)
    except Exception as exc:
        _logger.error("Webhook %s: delivery of %s failed: %s", webhook.webhook_id, event, exc)


@cache
def _session(policy: AddressPolicy) -> requests.Session:
    """A session whose every connection is checked against `policy` once connected."""

    def checked(base: type) -> type:
        class Checked(base):
            def _new_conn(self) -> socket.socket:
                sock = super()._new_conn()
                policy.check_peer(sock)  # before TLS, before a byte is sent
                return sock

        return Checked

    class Pool(HTTPConnectionPool):
        ConnectionCls = checked(HTTPConnection)

    class TlsPool(HTTPSConnectionPool):
        ConnectionCls = checked(HTTPSConnection)

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": TlsPool}

    retries = Retry(
        total=3,
        status_forcelist=[429, 500, 502, 503, 504],
        allowed_methods=["POST"],
        backoff_factor=1.0,
        backoff_max=10.0,
        respect_retry_after_header=True,
        raise_on_status=False,
        redirect=0,
    )
    session = requests.Session()
    session.trust_env = False  # a proxy would be the checked peer instead of the destination
    adapter = Adapter(max_retries=retries)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
