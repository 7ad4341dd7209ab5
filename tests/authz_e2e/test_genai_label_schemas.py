"""Label schemas through the gateway with MLflow's own client and the UI's REST calls: decided
on their experiment (readers get and list, managers create, update and delete; editors and
outsiders change nothing, outsiders see nothing, an unknown schema id is refused as a
forbidden one)."""

from __future__ import annotations

import pytest
from mlflow.genai import label_schemas
from mlflow.genai.label_schemas import InputCategorical, InputPassFail
from mlflow_calls import denied

MONA = ("mona-ls", ("ls-team",))  # manager: she creates the experiment
EDDIE = ("eddie-ls", ("ls-team",))  # editor: the creator's group
RITA = ("rita-ls", ("ls-readers",))  # reader: her group is bound as reader
OSCAR = ("oscar-ls", ("ls-outside",))  # no binding
BASE = "/ajax-api/3.0/mlflow/label-schemas"
PERMISSIONS = "/api/3.0/cedarflow/permissions"


@pytest.fixture(scope="module")
def experiment(authz_stack):
    from mlflow import MlflowClient

    with authz_stack.as_user(*MONA):
        experiment_id = MlflowClient().create_experiment("ls-mona")
    with authz_stack.http(*MONA) as http:
        http.post(
            f"{PERMISSIONS}/grant",
            json={
                "resource_type": "experiment",
                "resource_id": experiment_id,
                "group": "ls-readers",
                "role": "reader",
            },
        ).raise_for_status()
    return experiment_id


def tone(experiment_id: str):
    return label_schemas.create_label_schema(
        "tone",
        type="feedback",
        input=InputCategorical(options=["kind", "rude"]),
        experiment_id=experiment_id,
    )


def test_a_manager_creates_updates_and_deletes_label_schemas(authz_stack, experiment):
    with authz_stack.as_user(*MONA):
        created = tone(experiment)
        listed = label_schemas.list_label_schemas(experiment_id=experiment)
        assert sorted(s.name for s in listed) == ["Feedback", "tone"]  # the default seeded
        renamed = label_schemas.update_label_schema(created.schema_id, name="mood")
        assert renamed.name == "mood"
        assert label_schemas.get_label_schema("mood", experiment_id=experiment).schema_id == (
            created.schema_id
        )
        label_schemas.delete_label_schema(schema_id=created.schema_id)
        assert [s.name for s in label_schemas.list_label_schemas(experiment_id=experiment)] == [
            "Feedback"
        ]


def test_editors_and_readers_read_but_do_not_change_label_schemas(authz_stack, experiment):
    with authz_stack.as_user(*MONA):
        schema = label_schemas.create_label_schema(
            "helpful",
            type="feedback",
            input=InputPassFail(positive_label="yes", negative_label="no"),
            experiment_id=experiment,
        )
    for user in (EDDIE, RITA):
        with authz_stack.as_user(*user):
            assert label_schemas.get_label_schema(schema_id=schema.schema_id).name == "helpful"
            found = label_schemas.get_label_schema("helpful", experiment_id=experiment)
            assert found.schema_id == schema.schema_id
            names = [s.name for s in label_schemas.list_label_schemas(experiment_id=experiment)]
            assert "helpful" in names
            assert denied(lambda: tone(experiment))
            assert denied(
                lambda: label_schemas.update_label_schema(schema.schema_id, instruction="x")
            )
            assert denied(lambda: label_schemas.delete_label_schema(schema_id=schema.schema_id))
    with authz_stack.as_user(*MONA):
        assert label_schemas.get_label_schema(schema_id=schema.schema_id).instruction is None


def test_an_outsider_neither_sees_nor_changes_label_schemas(authz_stack, experiment):
    with authz_stack.as_user(*MONA):
        schema = label_schemas.create_label_schema(
            "clear",
            type="expectation",
            input=InputCategorical(options=["yes", "no"]),
            experiment_id=experiment,
        )
    with authz_stack.as_user(*OSCAR):
        assert denied(lambda: label_schemas.list_label_schemas(experiment_id=experiment))
        assert denied(lambda: label_schemas.get_label_schema(schema_id=schema.schema_id))
        assert denied(lambda: label_schemas.get_label_schema("clear", experiment_id=experiment))
        assert denied(lambda: tone(experiment))
        assert denied(lambda: label_schemas.update_label_schema(schema.schema_id, name="z"))
        assert denied(lambda: label_schemas.delete_label_schema(schema_id=schema.schema_id))
    with authz_stack.http(*OSCAR) as http:
        known = http.get(f"{BASE}/get", params={"schema_id": schema.schema_id})
        unknown = http.get(f"{BASE}/get", params={"schema_id": "ls-" + "0" * 32})
        assert known.status_code == unknown.status_code == 403
        gone = http.request("DELETE", f"{BASE}/delete", json={"schema_id": schema.schema_id})
        assert gone.status_code == 403
    with authz_stack.http(*MONA) as http:
        kept = http.get(f"{BASE}/get", params={"schema_id": schema.schema_id})
        assert kept.status_code == 200 and kept.json()["label_schema"]["name"] == "clear"
        missing = http.get(f"{BASE}/get", params={})
        assert missing.status_code == 400
        assert missing.json()["error_code"] == "INVALID_PARAMETER_VALUE"
