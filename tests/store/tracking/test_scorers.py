"""Scorers on DynamoDB answer as MLflow's SqlAlchemyStore (sqlite): register (versions), list,
list versions, get, delete one version or all, with the same errors; and the requests each
call makes."""

from __future__ import annotations

import json

import pytest
from mlflow.exceptions import MlflowException

JUDGE = json.dumps({"name": "tone", "instructions_judge_pydantic_data": {"model": "openai:/gpt-4"}})
CODE = json.dumps({"name": "length", "call_source": "return len(outputs)"})
GATEWAY = json.dumps({"name": "g", "instructions_judge_pydantic_data": {"model": "gateway:/e"}})


def outcome(call, *args, **kwargs):
    try:
        found = call(*args, **kwargs)
    except MlflowException as exc:
        return ("error", exc.error_code, exc.message)
    if isinstance(found, list):
        return [view(v) for v in found]
    return view(found) if found is not None else None


def view(version) -> tuple:
    return (version.scorer_name, version.scorer_version, version._serialized_scorer)


def test_scorers_answer_as_mlflows_store(moto_store, sql_store):
    answers = []
    for store in (moto_store, sql_store):
        experiment = store.create_experiment("judged")
        gone = store.create_experiment("gone")
        store.delete_experiment(gone)
        steps = [
            outcome(store.register_scorer, experiment, "tone", JUDGE),
            outcome(store.register_scorer, experiment, "tone", CODE),
            outcome(store.register_scorer, experiment, "length", CODE),
            outcome(store.register_scorer, experiment, "tone", JUDGE),
            outcome(store.list_scorers, experiment),
            outcome(store.list_scorer_versions, experiment, "tone"),
            outcome(store.get_scorer, experiment, "tone"),
            outcome(store.get_scorer, experiment, "tone", 2),
            outcome(store.get_scorer, experiment, "tone", 9),
            outcome(store.get_scorer, experiment, "nope"),
            outcome(store.delete_scorer, experiment, "tone", 3),
            outcome(store.get_scorer, experiment, "tone"),
            outcome(store.list_scorers, experiment),
            outcome(store.delete_scorer, experiment, "tone", 3),
            outcome(store.delete_scorer, experiment, "length"),
            outcome(store.list_scorers, experiment),
            outcome(store.list_scorer_versions, experiment, "length"),
            outcome(store.register_scorer, experiment, "length", CODE),
            outcome(store.register_scorer, experiment, " ", CODE),
            outcome(store.register_scorer, gone, "tone", CODE),
            outcome(store.list_scorers, gone),
            outcome(store.get_scorer, "4242", "tone"),
            outcome(store.list_scorers_across_experiments, [experiment, "0"]),
        ]
        answers.append(steps)
    for step, (ours, theirs) in enumerate(zip(*answers, strict=True)):
        assert ours == theirs, step


def test_gateway_models_are_refused_and_nothing_is_registered(moto_store):
    experiment = moto_store.create_experiment("judged")
    with pytest.raises(MlflowException, match="AI gateway is not offered") as caught:
        moto_store.register_scorer(experiment, "g", GATEWAY)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert moto_store.list_scorers(experiment) == []


def requests_of(store, call, *args) -> dict[str, int]:
    store.table.round_trips.reset()
    call(*args)
    return store.table.round_trips.by_operation()


def test_listing_reads_one_query_whatever_the_versions(moto_store):
    experiment = moto_store.create_experiment("judged")
    for n in range(5):
        moto_store.register_scorer(experiment, f"s{n}", CODE)
        moto_store.register_scorer(experiment, f"s{n}", JUDGE)
    assert requests_of(moto_store, moto_store.list_scorers, experiment) == {
        "GetItem": 1,
        "Query": 1,
    }
    assert requests_of(moto_store, moto_store.register_scorer, experiment, "s0", CODE) == {
        "GetItem": 1,
        "UpdateItem": 2,
        "PutItem": 2,
    }
    assert requests_of(moto_store, moto_store.get_scorer, experiment, "s0") == {"GetItem": 2}
