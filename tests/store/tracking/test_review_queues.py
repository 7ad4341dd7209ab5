"""Review queues on DynamoDB answer as MLflow's SqlAlchemyStore (sqlite): create, get-or-create a
user queue, get, get by name, list (filters, order, pages), update, delete, add, remove and list
items, set an item's status, with the same errors and codes; and the requests each call makes."""

from __future__ import annotations

import time

from mlflow.genai.label_schemas.label_schemas import InputText, LabelSchemaType
from store_support import outcome_of, requests_of


def view(found) -> tuple:
    if hasattr(found, "queue_type"):
        return (
            found.name,
            str(found.queue_type),
            found.experiment_id,
            found.created_by,
            tuple(found.users),
            len(found.schema_ids),
        )
    return (found.item_id, str(found.item_type), str(found.status), found.completed_by)


def outcome(call, *args, **kwargs):
    return outcome_of(view, r"(rq|ls)-[0-9a-f]{32}", call, *args, **kwargs)


def queue_pages(store, experiment_id: str, size: int, **filters) -> list[list[str]]:
    seen, token = [], None
    while True:
        page = store.list_review_queues(
            experiment_id, max_results=size, page_token=token, **filters
        )
        seen.append([q.name for q in page])
        token = page.token
        if not token:
            return seen


def item_pages(store, queue_id: str, size: int, **filters) -> list[list[str]]:
    seen, token = [], None
    while True:
        page = store.list_review_queue_items(
            queue_id, max_results=size, page_token=token, **filters
        )
        seen.append([i.item_id for i in page])
        token = page.token
        if not token:
            return seen


def queue(store, experiment_id: str, name: str, **more):
    time.sleep(0.002)  # distinct creation times: the order is then by time alone
    return store.create_review_queue(experiment_id, name=name, queue_type="custom", **more)


def added(store, queue_id: str, item_ids: list[str]):
    time.sleep(0.002)
    return store.add_items_to_review_queue(queue_id, item_ids=item_ids)


def test_review_queues_answer_as_mlflows_store(moto_store, sql_store):
    answers = []
    for store in (moto_store, sql_store):
        experiment = store.create_experiment("reviewed")
        other = store.create_experiment("other")
        gone = store.create_experiment("gone")
        store.delete_experiment(gone)
        tone = store.create_label_schema(
            experiment, name="tone", type=LabelSchemaType.FEEDBACK, input=InputText()
        )
        elsewhere = store.create_label_schema(
            other, name="tone", type=LabelSchemaType.FEEDBACK, input=InputText()
        )
        triage = queue(
            store, experiment, "Triage", users=["bob", "al"], schema_ids=[tone.schema_id]
        )
        second = queue(store, experiment, "second", created_by="carol")
        queue(store, other, "triage")
        steps = [
            outcome(queue, store, experiment, "triage"),
            outcome(queue, store, experiment, "default"),
            outcome(queue, store, experiment, "x", schema_ids=[elsewhere.schema_id]),
            outcome(queue, store, gone, "x"),
            outcome(queue, store, "4242", "x"),
            outcome(queue, store, experiment, ""),
            outcome(store.create_review_queue, experiment, name="x", queue_type="odd"),
            outcome(store.get_or_create_user_queue, experiment, user="dana"),
            outcome(store.get_or_create_user_queue, experiment, user="dana"),
            outcome(store.get_or_create_user_queue, experiment, user="second"),
            outcome(store.get_review_queue, triage.queue_id),
            outcome(store.get_review_queue, "rq-0123456789abcdef0123456789abcdef"),
            outcome(store.get_review_queue_by_name, experiment, name="TRIAGE"),
            outcome(store.get_review_queue_by_name, experiment, name="nope"),
            outcome(store.get_review_queue_by_name, gone, name="triage"),
            outcome(store.list_review_queues, experiment),
            queue_pages(store, experiment, 2),
            outcome(store.list_review_queues, experiment, user="AL"),
            outcome(store.list_review_queues, experiment, max_results=0),
            outcome(store.list_review_queues, gone),
            outcome(store.list_review_queues, experiment, page_token="garbage"),
            outcome(added, store, triage.queue_id, ["t1", "t2"]),
            outcome(added, store, triage.queue_id, ["t3", "t1"]),
            outcome(added, store, second.queue_id, ["t1"]),
            outcome(added, store, triage.queue_id, []),
            outcome(added, store, "rq-0123456789abcdef0123456789abcdef", ["t1"]),
            outcome(store.list_review_queues, experiment, item_id="t1"),
            outcome(store.list_review_queue_items, triage.queue_id),
            item_pages(store, triage.queue_id, 2),
            outcome(
                store.set_review_queue_item_status,
                triage.queue_id,
                item_id="t2",
                status="complete",
                completed_by="al",
            ),
            outcome(
                store.set_review_queue_item_status,
                triage.queue_id,
                item_id="t2",
                status="complete",
                completed_by="bob",
            ),
            outcome(
                store.set_review_queue_item_status,
                triage.queue_id,
                item_id="t2",
                status="complete",
            ),
            outcome(
                store.set_review_queue_item_status,
                triage.queue_id,
                item_id="t9",
                status="declined",
                completed_by="al",
            ),
            outcome(
                store.set_review_queue_item_status,
                triage.queue_id,
                item_id="t2",
                status="pending",
                completed_by="al",
            ),
            outcome(
                store.set_review_queue_item_status,
                triage.queue_id,
                item_id="t3",
                status="bogus",
                completed_by="al",
            ),
            item_pages(store, triage.queue_id, 5, status="complete"),
            outcome(
                store.set_review_queue_item_status, triage.queue_id, item_id="t2", status="pending"
            ),
            outcome(store.update_review_queue, triage.queue_id, schema_ids=[]),
            outcome(store.update_review_queue, triage.queue_id, name="Second"),
            outcome(store.update_review_queue, triage.queue_id, name="triage", users=["zed"]),
            outcome(store.update_review_queue, triage.queue_id, new_owner="erin"),
            outcome(store.get_review_queue_by_name, experiment, name="Triage"),
            outcome(
                store.update_review_queue,
                second.queue_id,
                name="renamed",
                schema_ids=[tone.schema_id],
            ),
            outcome(queue, store, experiment, "SECOND"),
            outcome(store.get_review_queue_by_name, experiment, name="second"),
            outcome(store.update_review_queue, second.queue_id, schema_ids=["ls-nope"]),
            outcome(store.update_review_queue, "rq-0123456789abcdef0123456789abcdef", name="n"),
            outcome(store.remove_items_from_review_queue, triage.queue_id, item_ids=["t1", "t7"]),
            outcome(store.list_review_queue_items, triage.queue_id),
            outcome(store.remove_items_from_review_queue, triage.queue_id, item_ids=["t2", "t3"]),
            outcome(store.update_review_queue, triage.queue_id, schema_ids=[]),
            outcome(store.delete_review_queue, second.queue_id),
            outcome(store.delete_review_queue, second.queue_id),
            outcome(store.get_review_queue, second.queue_id),
            outcome(store.list_review_queues, experiment, item_id="t1"),
            outcome(queue, store, experiment, "renamed"),
            outcome(store.list_review_queues, experiment),
        ]
        dana = store.get_review_queue_by_name(experiment, name="dana")
        steps += [outcome(store.update_review_queue, dana.queue_id, users=["x"])]
        answers.append(steps)
    for step, (ours, theirs) in enumerate(zip(*answers, strict=True)):
        assert ours == theirs, step


def test_review_queue_calls_make_the_documented_requests(moto_store):
    store = moto_store
    experiment = store.create_experiment("reviewed")
    tone = store.create_label_schema(
        experiment, name="tone", type=LabelSchemaType.FEEDBACK, input=InputText()
    )
    assert requests_of(
        store,
        store.create_review_queue,
        experiment,
        name="q",
        queue_type="custom",
        schema_ids=[tone.schema_id],
    ) == {"GetItem": 1, "BatchGetItem": 1, "PutItem": 2}
    q = store.get_review_queue_by_name(experiment, name="q").queue_id
    assert requests_of(store, store.get_review_queue, q) == {"GetItem": 1}
    assert requests_of(store, store.get_review_queue_by_name, experiment, name="Q") == {
        "GetItem": 3
    }
    assert requests_of(store, store.list_review_queues, experiment) == {
        "GetItem": 1,
        "Query": 1,
    }
    ids = [f"tr-{n}" for n in range(30)]
    assert requests_of(store, store.add_items_to_review_queue, q, item_ids=ids) == {
        "GetItem": 1,
        "BatchGetItem": 1,
        "UpdateItem": 1,
        "BatchWriteItem": 2,
    }
    assert requests_of(store, store.list_review_queues, experiment, item_id="tr-1") == {
        "GetItem": 1,
        "Query": 2,
    }
    assert requests_of(store, store.list_review_queue_items, q, max_results=5) == {
        "GetItem": 1,
        "Query": 1,
    }
    assert requests_of(
        store,
        store.set_review_queue_item_status,
        q,
        item_id="tr-1",
        status="complete",
        completed_by="al",
    ) == {"GetItem": 1, "UpdateItem": 1}
    assert requests_of(store, store.remove_items_from_review_queue, q, item_ids=ids[:3]) == {
        "GetItem": 1,
        "BatchGetItem": 1,
        "BatchWriteItem": 1,
        "UpdateItem": 1,
    }
    assert requests_of(store, store.update_review_queue, q, name="r", users=["al"]) == {
        "GetItem": 1,
        "PutItem": 1,
        "UpdateItem": 1,
        "DeleteItem": 1,
    }
    assert requests_of(store, store.delete_review_queue, q) == {
        "GetItem": 1,
        "DeleteItem": 2,
        "Query": 1,
        "BatchWriteItem": 2,
    }
