"""Review queues: the traces of an experiment waiting for a reviewer's answers.

A queue is one item, ``RQ#<queue_id>`` / ``RQ`` (store/keys.py), listed under its experiment on
gsi1 newest first; its users and questions are lists on it. Its case-folded name is unique within
the experiment through a claim item written with a conditional put before the queue. Each item
to review is ``RQ#<queue_id>`` / ``I#<item_id>``, indexed on gsi1 by the item it names, so one
query lists a queue's items and one lists the queues holding a trace. The queue keeps a count of
its items, raised before items are written, so a change of questions (allowed on an empty queue
only) is one conditional update.
"""

from __future__ import annotations

import uuid

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.entities.paged_list import PagedList
from mlflow.utils.time import get_current_time_millis

from store.dynamo.errors import ConditionFailed, within_item_limit
from store.dynamo.expressions import Update
from store.dynamo.schema import GSI1
from store.dynamo.table import DynamoTable
from store.keys import (
    REVIEW_QUEUE_ITEM_SK_PREFIX,
    label_schema_key,
    review_queue_item_key,
    review_queue_key,
    review_queue_name_key,
    review_queues_holding_pk,
    review_queues_index_pk,
    review_queues_index_sk,
)
from store.search.pagination import next_page_token, page_offset
from store.tracking.experiments import validate_max_results
from store.tracking.name_claims import NameClaims

DEFAULT_MAX_RESULTS = 1000  # MLflow's SEARCH_MAX_RESULTS_DEFAULT


class ReviewQueuesMixin:
    """The review-queue calls of MLflow's tracking store (needs ``self.table`` and
    ``_active_experiment`` from the label-schema calls)."""

    table: DynamoTable

    def create_review_queue(
        self, experiment_id, *, name, queue_type, created_by=None, users=None, schema_ids=None
    ):
        from mlflow.genai.review_queues.validation import validate_queue_for_create

        validated = validate_queue_for_create(
            name=name, queue_type=queue_type, users=users, schema_ids=schema_ids
        )
        experiment_id = self._active_experiment(experiment_id)
        self._check_schemas(experiment_id, validated.schema_ids)
        now = get_current_time_millis()
        queue_id = f"rq-{uuid.uuid4().hex}"
        if not self._claim_queue_name(experiment_id, validated.name, queue_id, now):
            raise _name_taken(validated.name)
        pk, sk = review_queue_key(queue_id)
        item = {
            "pk": pk,
            "sk": sk,
            "queue_id": queue_id,
            "experiment_id": experiment_id,
            "name": validated.name,
            "name_key": validated.name.lower(),
            "queue_type": str(validated.queue_type),
            "created_by": created_by,
            "creation_time_ms": now,
            "last_update_time_ms": now,
            "users": sorted(validated.users),
            "schema_ids": sorted(validated.schema_ids),
            "item_count": 0,
            "gsi1pk": review_queues_index_pk(experiment_id),
            "gsi1sk": review_queues_index_sk(now, queue_id),
        }
        with within_item_limit(f"Review queue '{validated.name}'"):
            self.table.put(item)
        return _queue_of(item)

    def get_or_create_user_queue(self, experiment_id, *, user):
        from mlflow.genai.review_queues import ReviewQueueType
        from mlflow.genai.review_queues.validation import normalize_user

        name = normalize_user(user)
        try:
            return self.create_review_queue(
                experiment_id, name=name, queue_type="user", created_by=name
            )
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            existing = self.get_review_queue_by_name(experiment_id, name=name)
            if ReviewQueueType(existing.queue_type) != ReviewQueueType.USER:
                raise MlflowException(
                    f"A non-user queue named '{name}' already exists; cannot get-or-create "
                    f"a user queue with that name.",
                    RESOURCE_ALREADY_EXISTS,
                ) from exc
            return existing

    def get_review_queue(self, queue_id):
        return _queue_of(self._queue_item(queue_id))

    def get_review_queue_by_name(self, experiment_id, *, name):
        experiment_id = self._active_experiment(experiment_id)
        item = self._queue_named(experiment_id, name.lower())
        if item is None:
            raise MlflowException(
                f"Review queue with name '{name}' not found for experiment '{experiment_id}'.",
                RESOURCE_DOES_NOT_EXIST,
            )
        return _queue_of(item)

    def list_review_queues(
        self, experiment_id, *, user=None, item_id=None, max_results=None, page_token=None
    ):
        from mlflow.genai.review_queues.validation import normalize_user

        max_results = DEFAULT_MAX_RESULTS if max_results is None else max_results
        validate_max_results(max_results)
        query = [str(experiment_id), user, item_id]
        offset = page_offset(page_token, "review_queues", query)
        experiment_id = self._active_experiment(experiment_id)
        items = list(self.table.query(review_queues_index_pk(experiment_id), index=GSI1))
        if user is not None:
            wanted = normalize_user(user)
            items = [i for i in items if wanted in i.get("users", [])]
        if item_id is not None:
            holding = {
                h["queue_id"]
                for h in self.table.query(review_queues_holding_pk(item_id), index=GSI1)
            }
            items = [i for i in items if i["queue_id"] in holding]
        page = [_queue_of(i) for i in items[offset : offset + max_results]]
        token = next_page_token("review_queues", offset, max_results, len(items), query)
        return PagedList(page, token)

    def update_review_queue(
        self, queue_id, *, users=None, schema_ids=None, name=None, new_owner=None
    ):
        from mlflow.genai.review_queues import ReviewQueueType
        from mlflow.genai.review_queues.validation import (
            normalize_schema_ids,
            normalize_users,
            validate_custom_queue_name,
            validate_queue_owner,
        )

        item = self._queue_item(queue_id)
        if ReviewQueueType(item["queue_type"]) == ReviewQueueType.USER:
            raise MlflowException(
                "A user queue's name, assigned user, schemas, and owner are fixed "
                "and cannot be updated.",
                INVALID_PARAMETER_VALUE,
            )
        if users is None and schema_ids is None and name is None and new_owner is None:
            return _queue_of(item)
        experiment_id = str(item["experiment_id"])
        update = Update().set("last_update_time_ms", get_current_time_millis())
        update.equals("name_key", item["name_key"])
        if new_owner is not None:
            update.set("created_by", validate_queue_owner(new_owner))
        renamed = None
        if name is not None:
            new_name = validate_custom_queue_name(name)
            if new_name != item["name"]:
                update.set("name", new_name).set("name_key", new_name.lower())
                if new_name.lower() != item["name_key"]:
                    renamed = new_name
        if users is not None:
            update.set("users", sorted(normalize_users(users)))
        if schema_ids is not None:
            if self._item_count(item) > 0:
                raise _questions_locked()
            normalized = normalize_schema_ids(schema_ids)
            self._check_schemas(experiment_id, normalized)
            update.set("schema_ids", sorted(normalized)).equals("item_count", 0)
        if renamed is not None and not self._claim_queue_name(
            experiment_id, renamed, item["queue_id"], get_current_time_millis()
        ):
            raise _name_taken(renamed)
        try:
            updated = self.table.update_existing(
                *review_queue_key(item["queue_id"]),
                update,
                missing=_questions_locked() if schema_ids is not None else _missing(queue_id),
                what=f"Review queue '{item['name']}'",
            )
        except MlflowException:
            if renamed is not None:
                self._release_queue_name(experiment_id, renamed.lower(), item["queue_id"])
            raise
        if renamed is not None:
            self._release_queue_name(experiment_id, item["name_key"], item["queue_id"])
        return _queue_of(updated)

    def delete_review_queue(self, queue_id):
        item = self.table.get(*review_queue_key(str(queue_id)))
        if item is None:
            return
        self.table.delete(*review_queue_key(item["queue_id"]))
        self._release_queue_name(str(item["experiment_id"]), item["name_key"], item["queue_id"])
        attached = self._attached(item["queue_id"])
        self.table.batch_write(deletes=[(i["pk"], i["sk"]) for i in attached])

    def add_items_to_review_queue(self, queue_id, *, item_ids, item_type="trace"):
        from mlflow.genai.review_queues import ReviewStatus
        from mlflow.genai.review_queues.validation import (
            coerce_item_type,
            validate_item_ids_for_attach,
        )

        kind = coerce_item_type(item_type)
        wanted = validate_item_ids_for_attach(item_ids)
        queue = self._queue_item(queue_id)
        queue_id = queue["queue_id"]
        found = {
            i["item_id"]: i
            for i in self.table.batch_get([review_queue_item_key(queue_id, w) for w in wanted])
        }
        now = get_current_time_millis()
        new = []
        for item_id in wanted:
            if item_id in found:
                continue  # idempotent: the existing item keeps its status
            pk, sk = review_queue_item_key(queue_id, item_id)
            found[item_id] = {
                "pk": pk,
                "sk": sk,
                "queue_id": queue_id,
                "item_type": str(kind),
                "item_id": item_id,
                "status": str(ReviewStatus.PENDING),
                "creation_time_ms": now,
                "last_update_time_ms": now,
                "gsi1pk": review_queues_holding_pk(item_id),
                "gsi1sk": queue_id,
            }
            new.append(found[item_id])
        if new:
            # the count goes up first: a concurrent change of questions then sees the items
            self.table.update(*review_queue_key(queue_id), Update().add("item_count", len(new)))
            self.table.batch_write(puts=new)
        return [_queue_item_of(found[i]) for i in wanted]

    def remove_items_from_review_queue(self, queue_id, *, item_ids):
        from mlflow.genai.review_queues.validation import validate_item_ids_for_attach

        wanted = validate_item_ids_for_attach(item_ids)
        queue_id = self._queue_item(queue_id)["queue_id"]
        found = self.table.batch_get([review_queue_item_key(queue_id, w) for w in wanted])
        if not found:
            return
        self.table.batch_write(deletes=[(i["pk"], i["sk"]) for i in found])
        self.table.update(*review_queue_key(queue_id), Update().add("item_count", -len(found)))

    def list_review_queue_items(self, queue_id, *, status=None, max_results=None, page_token=None):
        from mlflow.genai.review_queues.validation import coerce_status

        max_results = DEFAULT_MAX_RESULTS if max_results is None else max_results
        validate_max_results(max_results)
        query = [str(queue_id), None if status is None else str(status)]
        offset = page_offset(page_token, "review_queue_items", query)
        wanted = str(coerce_status(status)) if status is not None else None
        queue_id = self._queue_item(queue_id)["queue_id"]
        items = [i for i in self._attached(queue_id) if wanted is None or i["status"] == wanted]
        items.sort(key=lambda i: (-int(i["creation_time_ms"]), i["item_id"]))
        page = [_queue_item_of(i) for i in items[offset : offset + max_results]]
        token = next_page_token("review_queue_items", offset, max_results, len(items), query)
        return PagedList(page, token)

    def set_review_queue_item_status(self, queue_id, *, item_id, status, completed_by=None):
        from mlflow.genai.review_queues import ReviewStatus
        from mlflow.genai.review_queues.validation import (
            USER_MAX_LENGTH,
            coerce_status,
            normalize_item_id,
            normalize_user,
        )

        new_status = coerce_status(status)
        item_id = normalize_item_id(item_id)
        completer = normalize_user(completed_by) if completed_by is not None else None
        if new_status == ReviewStatus.PENDING:
            if completer is not None:
                raise MlflowException(
                    "`completed_by` must not be set when reopening an item to `pending`.",
                    INVALID_PARAMETER_VALUE,
                )
        elif not completer:
            raise MlflowException(
                f"`completed_by` is required when setting status to `{new_status}`.",
                INVALID_PARAMETER_VALUE,
            )
        if completer is not None and len(completer) > USER_MAX_LENGTH:
            raise MlflowException(
                f"`completed_by` must be at most {USER_MAX_LENGTH} characters; "
                f"got {len(completer)}.",
                INVALID_PARAMETER_VALUE,
            )
        real_id = self._queue_item(queue_id)["queue_id"]
        now = get_current_time_millis()
        update = Update().exists("pk").differs("status", str(new_status))
        update.set("status", str(new_status)).set("last_update_time_ms", now)
        if new_status == ReviewStatus.PENDING:
            update.remove("completed_by").remove("completed_time_ms")
        else:
            update.set("completed_by", completer).set("completed_time_ms", now)
        try:
            return _queue_item_of(
                self.table.update(*review_queue_item_key(real_id, item_id), update)
            )
        except ConditionFailed:
            pass  # not attached, or already in that status (then nothing changes)
        current = self.table.get(*review_queue_item_key(real_id, item_id))
        if current is None:
            raise MlflowException(
                f"Item '{item_id}' is not attached to review queue '{queue_id}'.",
                RESOURCE_DOES_NOT_EXIST,
            )
        return _queue_item_of(current)

    # ---- internals ------------------------------------------------------------------------

    def _queue_item(self, queue_id) -> dict:
        item = self.table.get(*review_queue_key(str(queue_id)))
        if item is None:
            raise _missing(queue_id)
        return item

    def _attached(self, queue_id: str) -> list[dict]:
        pk = review_queue_key(queue_id)[0]
        return list(self.table.query(pk, sk_prefix=REVIEW_QUEUE_ITEM_SK_PREFIX, consistent=True))

    def _item_count(self, queue: dict) -> int:
        """The queue's item count; a count left high by an interrupted add is recounted."""
        count = int(queue.get("item_count", 0))
        if count <= 0:
            return 0
        actual = len(self._attached(queue["queue_id"]))
        if actual != count:
            self.table.update(
                *review_queue_key(queue["queue_id"]), Update().add("item_count", actual - count)
            )
        return actual

    def _check_schemas(self, experiment_id: str, schema_ids: list[str]) -> None:
        if not schema_ids:
            return
        found = {
            i["schema_id"]
            for i in self.table.batch_get([label_schema_key(s) for s in schema_ids])
            if str(i["experiment_id"]) == experiment_id
        }
        if missing := [s for s in schema_ids if s not in found]:
            raise MlflowException(
                f"Label schema id(s) {missing} not found for experiment '{experiment_id}'.",
                INVALID_PARAMETER_VALUE,
            )

    def _queue_named(self, experiment_id: str, name_key: str) -> dict | None:
        claim = self.table.get(*review_queue_name_key(experiment_id, name_key))
        if claim is None:
            return None
        item = self.table.get(*review_queue_key(claim["queue_id"]))
        if item is None or item["name_key"] != name_key:
            return None
        return item

    def _queue_names(self) -> NameClaims:
        return NameClaims(self.table, "queue_id", review_queue_name_key, self._queue_named)

    def _claim_queue_name(self, experiment_id: str, name: str, queue_id: str, now: int) -> bool:
        """Hold the case-folded `name` for `queue_id`; False when a live queue holds it."""
        return self._queue_names().claim(experiment_id, name.lower(), queue_id, now)

    def _release_queue_name(self, experiment_id: str, name_key: str, queue_id: str) -> None:
        self._queue_names().release(experiment_id, name_key, queue_id)


def _missing(queue_id) -> MlflowException:
    return MlflowException(f"Review queue with id '{queue_id}' not found.", RESOURCE_DOES_NOT_EXIST)


def _name_taken(name: str) -> MlflowException:
    return MlflowException(
        f"Review queue with name '{name}' already exists (names are case-insensitive).",
        RESOURCE_ALREADY_EXISTS,
    )


def _questions_locked() -> MlflowException:
    return MlflowException(
        "A review queue's questions are locked once items are assigned to it. "
        "Remove the items before changing its questions.",
        INVALID_PARAMETER_VALUE,
    )


def _queue_of(item: dict):
    from mlflow.genai.review_queues import ReviewQueue, ReviewQueueType

    return ReviewQueue(
        queue_id=item["queue_id"],
        experiment_id=str(item["experiment_id"]),
        name=item["name"],
        queue_type=ReviewQueueType(item["queue_type"]),
        created_by=item.get("created_by"),
        creation_time_ms=int(item["creation_time_ms"]),
        last_update_time_ms=int(item["last_update_time_ms"]),
        users=list(item.get("users", [])),
        schema_ids=list(item.get("schema_ids", [])),
    )


def _queue_item_of(item: dict):
    from mlflow.genai.review_queues import ReviewItemType, ReviewQueueItem, ReviewStatus

    completed = item.get("completed_time_ms")
    return ReviewQueueItem(
        queue_id=item["queue_id"],
        item_type=ReviewItemType(item["item_type"]),
        item_id=item["item_id"],
        status=ReviewStatus(item["status"]),
        creation_time_ms=int(item["creation_time_ms"]),
        last_update_time_ms=int(item["last_update_time_ms"]),
        completed_by=item.get("completed_by"),
        completed_time_ms=None if completed is None else int(completed),
    )
