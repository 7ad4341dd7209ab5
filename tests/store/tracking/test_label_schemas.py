"""Label schemas on DynamoDB answer as MLflow's SqlAlchemyStore (sqlite): create, get, get by
name, list (the default question seeded, newest first, pages), update, delete, with the same
errors and error codes; and the requests each call makes."""

from __future__ import annotations

import time

from mlflow.genai.label_schemas.label_schemas import (
    InputCategorical,
    InputNumeric,
    InputPassFail,
    InputText,
    LabelSchemaType,
)
from store_support import outcome_of, requests_of

FEEDBACK = LabelSchemaType.FEEDBACK
EXPECTATION = LabelSchemaType.EXPECTATION


def view(schema) -> tuple:
    proto = schema.to_proto()
    return (
        schema.name,
        str(schema.type),
        type(schema.input).__name__,
        str(proto.input),
        schema.instruction,
        schema.enable_comment,
        schema.experiment_id,
        schema.created_by,
        schema.is_default,
    )


def outcome(call, *args, **kwargs):
    return outcome_of(view, r"ls-[0-9a-f]{32}", call, *args, **kwargs)


def pages(store, experiment_id: str, size: int) -> list[list[str]]:
    seen, token = [], None
    while True:
        page = store.list_label_schemas(experiment_id, max_results=size, page_token=token)
        seen.append([s.name for s in page])
        token = page.token
        if not token:
            return seen


def created(store, experiment_id: str, name: str, kind, widget, **more):
    time.sleep(0.002)  # distinct creation times: the order is then by time alone
    return store.create_label_schema(experiment_id, name=name, type=kind, input=widget, **more)


def test_label_schemas_answer_as_mlflows_store(moto_store, sql_store):
    answers = []
    for store in (moto_store, sql_store):
        experiment = store.create_experiment("labelled")
        other = store.create_experiment("other")
        gone = store.create_experiment("gone")
        store.delete_experiment(gone)
        tone = created(store, experiment, "tone", FEEDBACK, InputCategorical(options=["a", "b"]))
        score = created(
            store, experiment, "score", FEEDBACK, InputNumeric(min_value=0, max_value=5)
        )
        created(store, experiment, "ok", FEEDBACK, InputPassFail("yes", "no"), enable_comment=True)
        created(store, other, "tone", EXPECTATION, InputText(max_length=10), instruction="say")
        steps = [
            outcome(created, store, experiment, "tone", FEEDBACK, InputText()),
            outcome(created, store, experiment, "Feedback", FEEDBACK, InputText()),
            outcome(created, store, experiment, "", FEEDBACK, InputText()),
            outcome(created, store, gone, "x", FEEDBACK, InputText()),
            outcome(created, store, "4242", "x", FEEDBACK, InputText()),
            outcome(created, store, "abc", "x", FEEDBACK, InputText()),
            outcome(store.get_label_schema, tone.schema_id),
            outcome(store.get_label_schema, "ls-0123456789abcdef0123456789abcdef"),
            outcome(store.get_label_schema_by_name, experiment, "score"),
            outcome(store.get_label_schema_by_name, experiment, "Score"),
            outcome(store.get_label_schema_by_name, gone, "score"),
            outcome(store.list_label_schemas, experiment),
            outcome(store.list_label_schemas, experiment),
            pages(store, experiment, 2),
            pages(store, other, 1),
            outcome(store.list_label_schemas, experiment, max_results=0),
            outcome(store.list_label_schemas, experiment, max_results=50001),
            outcome(store.list_label_schemas, gone),
            outcome(store.list_label_schemas, experiment, page_token="garbage"),
            outcome(store.update_label_schema, score.schema_id, name="tone"),
            outcome(store.update_label_schema, score.schema_id, name="rating", instruction="how"),
            outcome(store.get_label_schema_by_name, experiment, "score"),
            outcome(store.get_label_schema_by_name, experiment, "rating"),
            outcome(created, store, experiment, "score", FEEDBACK, InputPassFail("yes", "no")),
            outcome(store.update_label_schema, tone.schema_id, input=InputCategorical(["c"])),
            outcome(store.update_label_schema, tone.schema_id, enable_comment=True),
            outcome(store.update_label_schema, tone.schema_id, name="Feedback"),
            outcome(store.update_label_schema, "ls-0123456789abcdef0123456789abcdef", name="n"),
            outcome(store.delete_label_schema, tone.schema_id),
            outcome(store.delete_label_schema, tone.schema_id),
            outcome(store.get_label_schema, tone.schema_id),
            outcome(store.get_label_schema_by_name, experiment, "tone"),
            outcome(created, store, experiment, "tone", FEEDBACK, InputText()),
            outcome(store.list_label_schemas, experiment),
        ]
        default = store.get_label_schema_by_name(experiment, "Feedback")
        steps += [
            outcome(store.delete_label_schema, default.schema_id),
            outcome(store.update_label_schema, default.schema_id, instruction="no"),
            outcome(store.list_label_schemas, experiment),
        ]
        answers.append(steps)
    for step, (ours, theirs) in enumerate(zip(*answers, strict=True)):
        assert ours == theirs, step


def test_label_schema_calls_make_the_documented_requests(moto_store):
    experiment = moto_store.create_experiment("labelled")
    assert requests_of(
        moto_store,
        moto_store.create_label_schema,
        experiment,
        name="tone",
        type=FEEDBACK,
        input=InputText(),
    ) == {"GetItem": 1, "PutItem": 2}
    schema = moto_store.get_label_schema_by_name(experiment, "tone")
    assert requests_of(moto_store, moto_store.get_label_schema, schema.schema_id) == {"GetItem": 1}
    assert requests_of(moto_store, moto_store.get_label_schema_by_name, experiment, "tone") == {
        "GetItem": 3
    }
    first = requests_of(moto_store, moto_store.list_label_schemas, experiment)
    assert first == {"GetItem": 2, "PutItem": 3, "Query": 1}
    assert requests_of(moto_store, moto_store.list_label_schemas, experiment) == {
        "GetItem": 2,
        "Query": 1,
    }
    assert requests_of(
        moto_store, moto_store.update_label_schema, schema.schema_id, name="mood"
    ) == {"GetItem": 1, "PutItem": 1, "UpdateItem": 1, "DeleteItem": 1}
    assert requests_of(moto_store, moto_store.delete_label_schema, schema.schema_id) == {
        "GetItem": 1,
        "DeleteItem": 2,
    }
