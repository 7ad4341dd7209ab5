"""Review queues through the gateway with MLflow's REST calls as the UI makes them: decided on
their experiment and on the traces they name (readers read, editors create queues, add traces
and review them, managers change, prune and delete queues, outsiders nothing); the queue's owner
and the reviewer are the signed-in callers, never the names a client sends."""

from __future__ import annotations

import pytest
from mlflow.genai import label_schemas
from mlflow.genai.label_schemas import InputPassFail
from traces_support import new_otel_id, start_trace

MONA = ("mona-rq", ("rq-team",))  # manager: she creates the experiments
EDDIE = ("eddie-rq", ("rq-team",))  # editor: the creator's group
RITA = ("rita-rq", ("rq-readers",))  # reader of the shared experiment only
OSCAR = ("oscar-rq", ("rq-outside",))  # no binding
BASE = "/ajax-api/3.0/mlflow/review-queues"


@pytest.fixture(scope="module")
def world(authz_stack):
    from mlflow import MlflowClient

    with authz_stack.as_user(*MONA):
        shared = MlflowClient().create_experiment("rq-shared")
        closed = MlflowClient().create_experiment("rq-closed")
        schema = label_schemas.create_label_schema(
            "helpful",
            type="feedback",
            input=InputPassFail(positive_label="yes", negative_label="no"),
            experiment_id=shared,
        )
    traces = {shared: [], closed: []}
    with authz_stack.http(*MONA) as http:
        http.post(
            "/api/3.0/cedarflow/permissions/grant",
            json={
                "resource_type": "experiment",
                "resource_id": shared,
                "group": "rq-readers",
                "role": "reader",
            },
        ).raise_for_status()
        # the closed experiment is the manager's alone: its editors' group loses it
        http.post(
            "/api/3.0/cedarflow/permissions/revoke",
            json={"resource_type": "experiment", "resource_id": closed, "group": "rq-team"},
        ).raise_for_status()
        for experiment_id, bucket in traces.items():
            for _ in range(4):
                trace_id = f"tr-{new_otel_id()}"
                start_trace(http, trace_id, experiment_id).raise_for_status()
                bucket.append(trace_id)
    return {"shared": shared, "closed": closed, "schema": schema.schema_id, "traces": traces}


def new_queue(authz_stack, world, name: str, *, items: int = 2) -> str:
    with authz_stack.http(*MONA) as http:
        created = http.post(
            f"{BASE}/create",
            json={
                "experiment_id": world["shared"],
                "name": name,
                "queue_type": "CUSTOM",
                "users": [EDDIE[0]],
                "schema_ids": [world["schema"]],
            },
        )
        assert created.status_code == 200, created.text
        queue_id = created.json()["review_queue"]["queue_id"]
        if items:
            added = http.post(
                f"{BASE}/items/add",
                json={"queue_id": queue_id, "item_ids": world["traces"][world["shared"]][:items]},
            )
            assert added.status_code == 200, added.text
    return queue_id


def test_the_ui_review_flow(authz_stack, world):
    first, second = world["traces"][world["shared"]][:2]
    with authz_stack.http(*MONA) as http:
        created = http.post(
            f"{BASE}/create",
            json={
                "experiment_id": world["shared"],
                "name": "Weekly review",
                "queue_type": "CUSTOM",
                "users": [EDDIE[0]],
                "schema_ids": [world["schema"]],
                "created_by": "someone-else",
            },
        )
        assert created.status_code == 200, created.text
        queue = created.json()["review_queue"]
        assert queue["created_by"] == MONA[0]  # the signed-in caller, not the client's word
    with authz_stack.http(*EDDIE) as http:
        added = http.post(
            f"{BASE}/items/add", json={"queue_id": queue["queue_id"], "item_ids": [first, second]}
        )
        assert added.status_code == 200, added.text
        assert [i["status"] for i in added.json()["items"]] == ["PENDING", "PENDING"]
        reviewed = http.post(
            f"{BASE}/items/set-status",
            json={
                "queue_id": queue["queue_id"],
                "item_id": first,
                "status": "COMPLETE",
                "completed_by": "someone-else",
            },
        )
        assert reviewed.status_code == 200, reviewed.text
        assert reviewed.json()["item"]["completed_by"] == EDDIE[0]
        mine = http.get(f"{BASE}/list", params={"experiment_id": world["shared"], "user": EDDIE[0]})
        assert [q["name"] for q in mine.json()["review_queues"]] == ["Weekly review"]
    with authz_stack.http(*RITA) as http:
        listed = http.get(f"{BASE}/items/list", params={"queue_id": queue["queue_id"]})
        assert listed.status_code == 200, listed.text
        statuses = {i["item_id"]: i["status"] for i in listed.json()["items"]}
        assert statuses == {first: "COMPLETE", second: "PENDING"}
        by_name = http.get(
            f"{BASE}/get-by-name",
            params={"experiment_id": world["shared"], "name": "weekly REVIEW"},
        )
        assert by_name.json()["review_queue"]["queue_id"] == queue["queue_id"]
    with authz_stack.http(*OSCAR) as http:
        assert (
            http.get(f"{BASE}/items/list", params={"queue_id": queue["queue_id"]}).status_code
            == 403
        )
        assert (
            http.get(f"{BASE}/list", params={"experiment_id": world["shared"]}).status_code == 403
        )


# (action, method, path, body or query of a call on `queue_id` / the shared experiment)
def calls(world, queue_id: str, user: str) -> list[tuple[str, str, str, dict]]:
    shared = world["shared"]
    first, _, third, _ = world["traces"][shared]
    return [
        ("get", "GET", "get", {"queue_id": queue_id}),
        ("get-by-name", "GET", "get-by-name", {"experiment_id": shared, "name": f"q-{user}"}),
        ("list", "GET", "list", {"experiment_id": shared}),
        ("list-items", "GET", "items/list", {"queue_id": queue_id}),
        ("create", "POST", "create", {"experiment_id": shared, "name": f"new-{user}",
                                      "queue_type": "CUSTOM"}),
        ("user-queue", "POST", "get-or-create-user", {"experiment_id": shared, "user": user}),
        ("add", "POST", "items/add", {"queue_id": queue_id, "item_ids": [third]}),
        ("review", "POST", "items/set-status", {"queue_id": queue_id, "item_id": first,
                                                "status": "DECLINED"}),
        ("update", "POST", "update", {"queue_id": queue_id, "update_users": True, "users": []}),
        ("remove", "POST", "items/remove", {"queue_id": queue_id, "item_ids": [first]}),
        ("delete", "POST", "delete", {"queue_id": queue_id}),
    ]  # fmt: skip


READS = {"get", "get-by-name", "list", "list-items"}
EDITS = READS | {"create", "user-queue", "add", "review"}
ALLOWED = {
    MONA: EDITS | {"update", "remove", "delete"},
    EDDIE: EDITS,
    RITA: READS,
    OSCAR: set(),
}


@pytest.mark.parametrize("user", list(ALLOWED), ids=lambda u: u[0])
def test_each_role_on_each_review_queue_call(authz_stack, world, user):
    queue_id = new_queue(authz_stack, world, f"q-{user[0]}")
    answers = {}
    with authz_stack.http(*user) as http:
        for name, method, path, params in calls(world, queue_id, user[0]):
            if method == "GET":
                response = http.get(f"{BASE}/{path}", params=params)
            else:
                response = http.post(f"{BASE}/{path}", json=params)
            answers[name] = response.status_code
    expected = {name: 200 if name in ALLOWED[user] else 403 for name in answers}
    assert answers == expected


def test_traces_a_caller_cannot_edit_are_refused(authz_stack, world):
    queue_id = new_queue(authz_stack, world, "guarded", items=0)
    closed_trace = world["traces"][world["closed"]][0]
    shared_trace = world["traces"][world["shared"]][3]
    with authz_stack.http(*EDDIE) as http:
        mixed = http.post(
            f"{BASE}/items/add",
            json={"queue_id": queue_id, "item_ids": [shared_trace, closed_trace]},
        )
        assert mixed.status_code == 403
        unknown = http.post(
            f"{BASE}/items/add", json={"queue_id": queue_id, "item_ids": [f"tr-{new_otel_id()}"]}
        )
        assert unknown.status_code == 403
        missing = http.get(f"{BASE}/get", params={"queue_id": "rq-" + "0" * 32})
        assert missing.status_code == 403
        listed = http.get(f"{BASE}/items/list", params={"queue_id": queue_id})
        assert listed.json().get("items", []) == []  # nothing of the refused call was written
    with authz_stack.http(*MONA) as http:
        # a manager of both experiments is still refused by MLflow: the trace is elsewhere
        across = http.post(
            f"{BASE}/items/add", json={"queue_id": queue_id, "item_ids": [closed_trace]}
        )
        assert across.status_code == 404
        assert across.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        bad = http.post(f"{BASE}/items/set-status", json={"queue_id": queue_id})
        assert bad.status_code == 400
        assert bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
