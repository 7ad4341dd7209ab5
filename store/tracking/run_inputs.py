"""Run inputs: datasets (kept once per experiment, referenced by an item of each run that used
them) and the logged models a run read or wrote (one item per link)."""

from __future__ import annotations

from functools import partial

from mlflow.entities import DatasetInput, LoggedModelInput, LoggedModelOutput
from mlflow.entities.dataset_summary import _DatasetSummary
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
from mlflow.utils.validation import (
    _parse_experiment_ids,
    _validate_dataset_inputs,
    _validate_run_id,
)

from store.dynamo.expressions import Update
from store.dynamo.table import DynamoTable
from store.keys import experiment_pk
from store.tracking.items import DATASET_SK_PREFIX, dataset_key
from store.tracking.run_keys import content_pk, input_sk, model_input_sk, model_output_sk
from store.tracking.runs import check_active

# A dataset item holds name, digest, source, schema and profile; DynamoDB items stop at 400 KB.
MAX_DATASET_BYTES = 380_000
_MAX_DATASET_SUMMARIES = 1000
_NO_CONTEXT = "-"  # contexts are kept as "+<value>" or this marker (a set cannot hold None)


class RunInputsMixin:
    """log_inputs / log_outputs and the dataset summaries the UI lists."""

    table: DynamoTable

    def log_inputs(
        self,
        run_id: str,
        datasets: list[DatasetInput] | None = None,
        models: list[LoggedModelInput] | None = None,
    ):
        _validate_run_id(run_id)
        if datasets is not None:
            if not isinstance(datasets, list):
                raise TypeError(f"Argument 'datasets' should be a list, got '{type(datasets)}'")
            _validate_dataset_inputs(datasets)
        unique = _first_per_name_and_digest(datasets or [])
        for dataset_input in unique:
            _check_dataset_size(dataset_input)
        location = self._location(run_id)
        exp, position = location.experiment_id, location.position
        refs = [_input_item(exp, position, d) for d in unique]
        reads = [partial(self._core, location)]
        if refs:
            reads.append(partial(self.table.batch_get, [(r["pk"], r["sk"]) for r in refs]))
        core, *linked = self.table.fan_out(reads)
        check_active(core)
        already = {item["sk"] for item in (linked[0] if linked else [])}
        new = [(d, ref) for d, ref in zip(unique, refs, strict=True) if ref["sk"] not in already]
        # Datasets before the references to them: a reference never names a missing dataset.
        self.table.fan_out([partial(self._upsert_dataset, exp, d) for d, _ in new])
        links = [ref for _, ref in new] + [
            {
                "pk": location.content_pk,
                "sk": model_input_sk(position, m.model_id),
                "model_id": m.model_id,
            }
            for m in models or []
        ]
        if links:
            self.table.batch_write(puts=links)

    def log_outputs(self, run_id: str, models: list[LoggedModelOutput]):
        location = self._active_location(run_id)
        outputs = [
            {
                "pk": location.content_pk,
                "sk": model_output_sk(location.position, m.model_id, m.step),
                "model_id": m.model_id,
                "step": m.step,
            }
            for m in models
        ]
        if outputs:
            self.table.batch_write(puts=outputs)

    def _upsert_dataset(self, experiment_id: str, dataset_input: DatasetInput) -> None:
        """Create the experiment's dataset item once (first writer wins) and note the context."""
        dataset = dataset_input.dataset
        context = next(
            (t.value for t in dataset_input.tags if t.key == MLFLOW_DATASET_CONTEXT), None
        )
        fields = {
            "name": dataset.name,
            "digest": dataset.digest,
            "source_type": dataset.source_type,
            "source": dataset.source,
            "schema": dataset.schema,
            "profile": dataset.profile,
            "experiment_id": experiment_id,
        }
        update = Update()
        for field, value in fields.items():
            update.set_if_missing(field, value)
        update.add("contexts", {_NO_CONTEXT if context is None else "+" + context})
        self.table.update(*dataset_key(experiment_id, dataset.name, dataset.digest), update)

    def _search_datasets(self, experiment_ids):
        summaries = []
        for experiment_id in dict.fromkeys(map(str, _parse_experiment_ids(experiment_ids))):
            for item in self.table.query(experiment_pk(experiment_id), sk_prefix=DATASET_SK_PREFIX):
                for context in sorted(item.get("contexts", ())):
                    summaries.append(
                        _DatasetSummary(
                            experiment_id=experiment_id,
                            name=item["name"],
                            digest=item["digest"],
                            context=None if context == _NO_CONTEXT else context[1:],
                        )
                    )
                    if len(summaries) >= _MAX_DATASET_SUMMARIES:
                        return summaries
        return summaries


def _first_per_name_and_digest(datasets: list[DatasetInput]) -> list[DatasetInput]:
    first: dict[tuple[str, str], DatasetInput] = {}
    for dataset_input in datasets:
        first.setdefault((dataset_input.dataset.name, dataset_input.dataset.digest), dataset_input)
    return list(first.values())


def _check_dataset_size(dataset_input: DatasetInput) -> None:
    dataset = dataset_input.dataset
    size = sum(
        len((text or "").encode())
        for text in (dataset.name, dataset.digest, dataset.source, dataset.schema, dataset.profile)
    )
    if size > MAX_DATASET_BYTES:
        raise MlflowException(
            f"Dataset '{dataset.name}' is {size} bytes (source, schema and profile together); "
            f"this store keeps at most {MAX_DATASET_BYTES} bytes per dataset. Nothing was logged.",
            INVALID_PARAMETER_VALUE,
        )


def _input_item(experiment_id: str, position: str, dataset_input: DatasetInput) -> dict:
    """The run's reference to a dataset of its experiment, with the input's tags."""
    dataset = dataset_input.dataset
    dataset_sk = dataset_key(experiment_id, dataset.name, dataset.digest)[1]
    return {
        "pk": content_pk(experiment_id),
        "sk": input_sk(position, dataset_sk),
        "ds": dataset_sk,
        "name": dataset.name,
        "digest": dataset.digest,
        "tags": [[tag.key, tag.value] for tag in dataset_input.tags],
    }
