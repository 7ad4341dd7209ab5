"""Label schemas: the questions reviewers answer on an experiment's traces.

A schema is one item, ``LS#<schema_id>`` / ``LS`` (store/keys.py), listed under its experiment on
gsi1 newest first. Its name is unique within the experiment through a claim item under the
experiment's partition, written with a conditional put before the schema; a claim left by a
crash between the two writes (its schema missing or renamed) is taken over after a minute. The
experiment's protected default question is seeded by the first list, as MLflow's store does,
and a marker item says it is there.
"""

from __future__ import annotations

import json
import uuid

from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.entities.paged_list import PagedList
from mlflow.utils.time import get_current_time_millis

from store.dynamo.errors import within_item_limit
from store.dynamo.expressions import Update
from store.dynamo.schema import GSI1
from store.dynamo.table import DynamoTable
from store.keys import (
    label_schema_default_key,
    label_schema_key,
    label_schema_name_key,
    label_schemas_index_pk,
    label_schemas_index_sk,
)
from store.search.pagination import next_page_token, page_offset
from store.tracking.experiments import validate_max_results
from store.tracking.name_claims import NameClaims


class LabelSchemasMixin:
    """The label-schema calls of MLflow's tracking AbstractStore (needs ``self.table`` and
    ``_experiment_item``)."""

    table: DynamoTable

    def create_label_schema(
        self, experiment_id, *, name, type, input, instruction=None, enable_comment=False
    ):
        from mlflow.genai.label_schemas.label_schemas import LabelSchema, LabelSchemaType
        from mlflow.genai.label_schemas.validation import validate_schema_for_create

        validate_schema_for_create(
            name=name,
            type=type,
            input=input,
            instruction=instruction,
            enable_comment=enable_comment,
        )
        experiment_id = self._active_experiment(experiment_id)
        schema = LabelSchema(
            schema_id=f"ls-{uuid.uuid4().hex}",
            experiment_id=experiment_id,
            name=name,
            type=LabelSchemaType(str(type)),
            input=input,
            instruction=instruction,
            enable_comment=enable_comment,
        )
        now = get_current_time_millis()
        if not self._claim_schema_name(experiment_id, name, schema.schema_id, now):
            raise _name_taken(name, experiment_id)
        item = _item_of(schema, created=now, updated=now)
        with within_item_limit(f"Label schema '{name}'"):
            self.table.put(item)
        return _schema_of(item)

    def get_label_schema(self, schema_id):
        item = self.table.get(*label_schema_key(str(schema_id)))
        if item is None:
            raise MlflowException(
                f"Label schema with id '{schema_id}' not found.", RESOURCE_DOES_NOT_EXIST
            )
        return _schema_of(item)

    def get_label_schema_by_name(self, experiment_id, name):
        experiment_id = self._active_experiment(experiment_id)
        item = self._schema_named(experiment_id, name)
        if item is None:
            raise MlflowException(
                f"Label schema with name '{name}' not found for experiment '{experiment_id}'.",
                RESOURCE_DOES_NOT_EXIST,
            )
        return _schema_of(item)

    def list_label_schemas(self, experiment_id, max_results=100, page_token=None):
        validate_max_results(max_results)
        experiment_query = [str(experiment_id)]
        offset = page_offset(page_token, "label_schemas", experiment_query)
        experiment_id = self._active_experiment(experiment_id)
        self._ensure_default_label_schema(experiment_id)
        items = list(self.table.query(label_schemas_index_pk(experiment_id), index=GSI1))
        page = [_schema_of(i) for i in items[offset : offset + max_results]]
        token = next_page_token("label_schemas", offset, max_results, len(items), experiment_query)
        return PagedList(page, token)

    def update_label_schema(
        self, schema_id, *, name=None, instruction=None, enable_comment=None, input=None
    ):
        from mlflow.genai.label_schemas.validation import validate_schema_for_update
        from mlflow.store.tracking.dbmodels.models import _input_to_dict

        item = self.table.get(*label_schema_key(str(schema_id)))
        if item is None:
            raise MlflowException(
                f"Label schema with id '{schema_id}' not found.", RESOURCE_DOES_NOT_EXIST
            )
        validate_schema_for_update(
            existing=_schema_of(item),
            name=name,
            instruction=instruction,
            enable_comment=enable_comment,
            input=input,
        )
        experiment_id = str(item["experiment_id"])
        now = get_current_time_millis()
        update = Update().set("last_update_time", now).equals("name", item["name"])
        renamed = name is not None and name != item["name"]
        if renamed:
            if not self._claim_schema_name(experiment_id, name, item["schema_id"], now):
                raise _name_taken(name, experiment_id)
            update.set("name", name)
        if instruction is not None:
            update.set("instruction", instruction)
        if enable_comment is not None:
            update.set("enable_comment", bool(enable_comment))
        if input is not None:
            input_type, input_config = _input_to_dict(input)
            update.set("input_type", input_type).set("input_config", input_config)
        missing = MlflowException(
            f"Label schema with id '{schema_id}' not found.", RESOURCE_DOES_NOT_EXIST
        )
        updated = self.table.update_existing(
            *label_schema_key(item["schema_id"]),
            update,
            missing=missing,
            what=f"Label schema '{item['name']}'",
        )
        if renamed:
            self._release_schema_name(experiment_id, item["name"], item["schema_id"])
        return _schema_of(updated)

    def delete_label_schema(self, schema_id):
        item = self.table.get(*label_schema_key(str(schema_id)))
        if item is None:
            return
        if item.get("is_default"):
            raise MlflowException(
                "The experiment's default question cannot be deleted.", INVALID_PARAMETER_VALUE
            )
        self.table.delete(*label_schema_key(item["schema_id"]))
        self._release_schema_name(str(item["experiment_id"]), item["name"], item["schema_id"])

    # ---- internals ------------------------------------------------------------------------

    def _active_experiment(self, experiment_id) -> str:
        """The canonical id of an active experiment (MLflow's error otherwise)."""
        return str(self._experiment_item(experiment_id, ViewType.ACTIVE_ONLY)["experiment_id"])

    def _schema_named(self, experiment_id: str, name: str) -> dict | None:
        claim = self.table.get(*label_schema_name_key(experiment_id, name))
        if claim is None:
            return None
        item = self.table.get(*label_schema_key(claim["schema_id"]))
        if item is None or item["name"] != name:
            return None
        return item

    def _schema_names(self) -> NameClaims:
        return NameClaims(self.table, "schema_id", label_schema_name_key, self._schema_named)

    def _claim_schema_name(self, experiment_id: str, name: str, schema_id: str, now: int) -> bool:
        """Hold `name` for `schema_id`; False when a live schema holds it already."""
        return self._schema_names().claim(experiment_id, name, schema_id, now)

    def _release_schema_name(self, experiment_id: str, name: str, schema_id: str) -> None:
        self._schema_names().release(experiment_id, name, schema_id)

    def _ensure_default_label_schema(self, experiment_id: str) -> None:
        """Seed the protected default question once per experiment, as MLflow's list does."""
        from mlflow.genai.label_schemas.label_schemas import (
            InputText,
            LabelSchema,
            LabelSchemaType,
        )
        from mlflow.genai.label_schemas.validation import (
            DEFAULT_LABEL_SCHEMA_INSTRUCTION,
            DEFAULT_LABEL_SCHEMA_NAME,
        )

        pk, sk = label_schema_default_key(experiment_id)
        if self.table.get(pk, sk) is not None:
            return
        schema = LabelSchema(
            schema_id=f"ls-{uuid.uuid4().hex}",
            experiment_id=experiment_id,
            name=DEFAULT_LABEL_SCHEMA_NAME,
            type=LabelSchemaType.FEEDBACK,
            input=InputText(),
            instruction=DEFAULT_LABEL_SCHEMA_INSTRUCTION,
            enable_comment=False,
            is_default=True,
        )
        now = get_current_time_millis()
        if self._claim_schema_name(experiment_id, schema.name, schema.schema_id, now):
            self.table.put(_item_of(schema, created=now, updated=now))
            self.table.put({"pk": pk, "sk": sk, "schema_id": schema.schema_id})
        # else: a schema of that name exists (a concurrent seed, or an older user schema),
        # which MLflow's store also leaves as the experiment's only "Feedback"


def _name_taken(name: str, experiment_id: str) -> MlflowException:
    return MlflowException(
        f"Label schema with name '{name}' already exists for experiment '{experiment_id}'.",
        RESOURCE_ALREADY_EXISTS,
    )


def _item_of(schema, *, created: int, updated: int) -> dict:
    from mlflow.store.tracking.dbmodels.models import _input_to_dict

    pk, sk = label_schema_key(schema.schema_id)
    input_type, input_config = _input_to_dict(schema.input)
    return {
        "pk": pk,
        "sk": sk,
        "schema_id": schema.schema_id,
        "experiment_id": str(schema.experiment_id),
        "name": schema.name,
        "type": str(schema.type),
        "instruction": schema.instruction,
        "enable_comment": bool(schema.enable_comment),
        "input_type": input_type,
        "input_config": input_config,
        "created_by": schema.created_by,
        "created_time": created,
        "last_update_time": updated,
        "is_default": bool(schema.is_default),
        "gsi1pk": label_schemas_index_pk(str(schema.experiment_id)),
        "gsi1sk": label_schemas_index_sk(created, schema.schema_id),
    }


def _schema_of(item: dict):
    from mlflow.genai.label_schemas.label_schemas import LabelSchema, LabelSchemaType
    from mlflow.store.tracking.dbmodels.models import _input_from_dict

    return LabelSchema(
        name=item["name"],
        type=LabelSchemaType(item["type"]),
        input=_input_from_dict(item["input_type"], json.loads(item["input_config"])),
        instruction=item.get("instruction"),
        enable_comment=bool(item.get("enable_comment", False)),
        schema_id=item["schema_id"],
        experiment_id=str(item["experiment_id"]),
        created_by=item.get("created_by"),
        created_at=int(item["created_time"]),
        updated_at=int(item["last_update_time"]),
        is_default=bool(item.get("is_default", False)),
    )
