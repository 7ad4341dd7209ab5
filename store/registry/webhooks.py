"""Registry webhooks on DynamoDB, with the semantics of MLflow's SQL store.

One item per webhook (`store/keys.py`: `WEBHOOK#<id>` / `WEBHOOK`) holding its name, URL,
events (`"<entity>.<action>"` strings), status, times and its secret sealed at rest
(`webhook_secrets.py`). Live webhooks are also indexed under one `gsi1` partition, ordered by
creation time; deleting one (a soft delete, as MLflow's) removes it from the index. Webhooks
are few and made by people: a listing reads the index (one Query per MB) and pages in memory.

URLs are checked by the outbound guard (store/webhooks/guard.py), with MLflow's messages.
Requests: create 1 PutItem; get 1 GetItem; list 1 Query per MB; update and delete 1 UpdateItem
each. List by event (what delivery reads on every registry write) reuses the list read within
the last `WEBHOOK_CACHE_SECONDS`; a create, update or delete through this store drops it.
"""

from __future__ import annotations

import uuid
from time import monotonic

from mlflow.entities.webhook import Webhook, WebhookEvent, WebhookStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.store.entities.paged_list import PagedList
from mlflow.utils.validation import _validate_webhook_events, _validate_webhook_name

from store.dynamo.errors import ConditionFailed
from store.dynamo.expressions import Update
from store.dynamo.schema import GSI1
from store.dynamo.table import DynamoTable
from store.keys import WEBHOOKS_GSI_PK, webhook_key, webhooks_index_key
from store.registry.core import now_ms
from store.registry.webhook_secrets import seal_secret
from store.search.pagination import next_page_token, page_offset
from store.webhooks.guard import AddressPolicy

_KIND = "webhooks"
# How long a listing serves deliveries: changes made through another process apply within it.
WEBHOOK_CACHE_SECONDS = 5.0


def webhook_not_found(webhook_id: str) -> MlflowException:
    return MlflowException(f"Webhook with ID {webhook_id} not found.", RESOURCE_DOES_NOT_EXIST)


def event_name(event: WebhookEvent) -> str:
    return f"{event.entity.value}.{event.action.value}"


def webhook_entity(item: dict) -> Webhook:
    """The entity MLflow's handlers return; `secret` holds the sealed value (never sent back:
    the proto has no secret field), opened only by the delivery."""
    return Webhook(
        webhook_id=item["id"],
        name=item["name"],
        url=item["url"],
        events=[WebhookEvent.from_str(e) for e in sorted(item["events"])],
        creation_timestamp=int(item["created"]),
        last_updated_timestamp=int(item["updated"]),
        description=item.get("description"),
        status=WebhookStatus(item["status"]),
        secret=item.get("secret"),
    )


class WebhooksMixin:
    """create / get / list / list by event / update / delete, for DynamoRegistryStore."""

    _table: DynamoTable
    _webhooks_cached: tuple[float, list[dict]] | None = None  # (read at, live items)

    def create_webhook(self, name, url, events, description=None, secret=None, status=None):
        _validate_webhook_name(name)
        AddressPolicy.from_env().check_url(url)
        _validate_webhook_events(events)
        webhook_id = str(uuid.uuid4())
        created = now_ms()
        pk, sk = webhook_key(webhook_id)
        item = {
            "pk": pk,
            "sk": sk,
            "id": webhook_id,
            "name": name,
            "url": url,
            "events": {event_name(e) for e in events},
            "status": (status or WebhookStatus.ACTIVE).value,
            "created": created,
            "updated": created,
            "gsi1pk": WEBHOOKS_GSI_PK,
            "gsi1sk": webhooks_index_key(created, webhook_id),
        }
        if description is not None:
            item["description"] = description
        if secret:
            item["secret"] = seal_secret(secret, webhook_id)
        self._webhooks_cached = None
        self._table.put(item, condition="attribute_not_exists(pk)")
        return webhook_entity(item)

    def get_webhook(self, webhook_id):
        return webhook_entity(self._live_webhook(webhook_id))

    def list_webhooks(self, max_results=None, page_token=None):
        return self._page(self._live_items(), max_results, page_token, None)

    def list_webhooks_by_event(self, event, max_results=None, page_token=None):
        name = event_name(event)
        items = [i for i in self._live_items_for_delivery() if name in i["events"]]
        return self._page(items, max_results, page_token, name)

    def update_webhook(
        self, webhook_id, name=None, description=None, url=None, events=None, secret=None,
        status=None,
    ):  # fmt: skip
        pk, sk = webhook_key(webhook_id)
        update = Update().exists("pk").missing("deleted")
        if name is not None:
            _validate_webhook_name(name)
            update.set("name", name)
        if url is not None:
            AddressPolicy.from_env().check_url(url)
            update.set("url", url)
        if events is not None:
            _validate_webhook_events(events)
            update.set("events", {event_name(e) for e in events})
        if description is not None:
            update.set("description", description)
        if secret is not None:
            update.set_or_remove("secret", seal_secret(secret, webhook_id) if secret else None)
        if status is not None:
            update.set("status", status.value)
        update.set("updated", now_ms())
        self._webhooks_cached = None
        try:
            return webhook_entity(self._table.update(pk, sk, update))
        except ConditionFailed:
            raise webhook_not_found(webhook_id) from None

    def delete_webhook(self, webhook_id):
        pk, sk = webhook_key(webhook_id)
        deleted = now_ms()
        update = Update().exists("pk").missing("deleted")
        update.set("deleted", deleted).set("updated", deleted).remove("gsi1pk").remove("gsi1sk")
        self._webhooks_cached = None
        try:
            self._table.update(pk, sk, update)
        except ConditionFailed:
            raise webhook_not_found(webhook_id) from None

    # -- reads --

    def _live_webhook(self, webhook_id: str) -> dict:
        item = self._table.get(*webhook_key(webhook_id))
        if item is None or "deleted" in item:
            raise webhook_not_found(webhook_id)
        return item

    def _live_items_for_delivery(self) -> list[dict]:
        cached = self._webhooks_cached
        if cached is not None and 0 <= monotonic() - cached[0] < WEBHOOK_CACHE_SECONDS:
            return cached[1]
        read_at = monotonic()
        items = self._live_items()
        self._webhooks_cached = (read_at, items)
        return items

    def _live_items(self) -> list[dict]:
        # newest first, as MLflow orders them (creation time descending)
        return list(self._table.query(WEBHOOKS_GSI_PK, index=GSI1, forward=False))

    def _page(self, items: list[dict], max_results, page_token, query) -> PagedList:
        max_results = max_results or 100
        if max_results < 1 or max_results > 1000:
            raise MlflowException(
                "max_results must be between 1 and 1000.", INVALID_PARAMETER_VALUE
            )
        offset = page_offset(page_token, _KIND, query)
        page = items[offset : offset + max_results]
        token = next_page_token(_KIND, offset, max_results, len(items), query)
        return PagedList([webhook_entity(i) for i in page], token)
