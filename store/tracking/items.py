"""Keys and item shapes of the tracking store, and their conversion to MLflow entities.

Every item lives in the one table (see store/README.md):
- experiment      pk=EXP#<id>             sk=EXP      gsi1pk=EXPS           gsi1sk=<id, padded>
- name claim      pk=EXPNAME#<name>       sk=EXPNAME  (experiment_id, claimed_at)
- id counter      pk=COUNTER#experiment   sk=COUNTER  (value, ADD)
- run             pk=RUN#<run_id>         sk=RUN      gsi1pk=EXPRUNS#<exp>
                  gsi1sk=T#<2^63-1-start_time, 20 digits>#<run_id> (no start time: U#<run_id>)
- metric history  pk=HIST#<run_id>#<key>  sk=<step>#<ts>#<value id>
- dataset         pk=EXP#<id>             sk=DS#<sha256(name, digest)>
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from mlflow.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    ExperimentTag,
    InputTag,
    LifecycleStage,
    LoggedModelInput,
    LoggedModelOutput,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunOutputs,
    RunTag,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.utils.mlflow_tags import _get_run_name_from_tags
from mlflow.utils.workspace_utils import DEFAULT_WORKSPACE_NAME

from store.dynamo.values import float_from_dynamo, float_to_dynamo
from store.keys import experiment_pk

EXPERIMENTS_GSI = "EXPS"
DATASET_SK_PREFIX = "DS#"
EXPERIMENT_COUNTER = ("COUNTER#experiment", "COUNTER")
_ID_WIDTH = 20
_INT64_OFFSET = 2**63
_INT64_MAX = 2**63 - 1
# A run's index key: the index's ascending order is MLflow's default run order.
RUN_TIMED_PREFIX = "T#"
RUN_UNTIMED_PREFIX = "U#"  # after every timed run, as SQL puts NULL start times last
# SQL stores ±inf as ±max double and NaN as 0 with a flag; filters and ordering see those values.
_MAX_DOUBLE = 1.7976931348623157e308


def runs_of_experiment(experiment_id: str) -> str:
    return f"EXPRUNS#{experiment_id}"


def run_index_key(start_time: int | None, run_id: str) -> str:
    """gsi1sk of a run: start_time descending, then run_id ascending, no start time last."""
    if start_time is None:
        return f"{RUN_UNTIMED_PREFIX}{run_id}"
    clamped = min(max(int(start_time), -_INT64_MAX - 1), _INT64_MAX)
    return f"{RUN_TIMED_PREFIX}{_INT64_MAX - clamped:020d}#{run_id}"


def history_pk(run_id: str, key: str) -> str:
    return f"HIST#{run_id}#{key}"


def padded_experiment_id(experiment_id: str) -> str:
    return experiment_id.zfill(_ID_WIDTH)


def dataset_key(experiment_id: str, name: str, digest: str) -> tuple[str, str]:
    fingerprint = hashlib.sha256(f"{name}\x00{digest}".encode()).hexdigest()
    return experiment_pk(experiment_id), DATASET_SK_PREFIX + fingerprint


# ---- metric values --------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricPoint:
    """One logged value; `rank` is what SQL compares (NaN as 0, ±inf as ±max double)."""

    key: str
    value: float
    timestamp: int
    step: int

    @property
    def is_nan(self) -> bool:
        return math.isnan(self.value)

    @property
    def rank(self) -> float:
        if self.is_nan:
            return 0.0
        if math.isinf(self.value):
            return _MAX_DOUBLE if self.value > 0 else -_MAX_DOUBLE
        return float(self.value)

    def is_more_recent_than(self, other: MetricPoint) -> bool:
        return (self.step, self.timestamp, self.rank) > (other.step, other.timestamp, other.rank)

    def history_sk(self) -> str:
        value_id = "nan" if self.is_nan else repr(self.rank)
        return f"{self.step + _INT64_OFFSET:020d}#{self.timestamp:020d}#{value_id}"

    def to_attribute(self) -> dict:
        return {"v": float_to_dynamo(self.value), "t": self.timestamp, "s": self.step}

    def to_entity(self) -> Metric:
        return Metric(key=self.key, value=self.value, timestamp=self.timestamp, step=self.step)

    @classmethod
    def from_metric(cls, metric: Metric) -> MetricPoint:
        return cls(metric.key, float(metric.value), int(metric.timestamp), int(metric.step))

    @classmethod
    def from_attribute(cls, key: str, attribute: dict) -> MetricPoint:
        return cls(key, float_from_dynamo(attribute["v"]), int(attribute["t"]), int(attribute["s"]))


def step_sk_bound(step: int) -> str:
    return f"{step + _INT64_OFFSET:020d}"


def history_item(run_id: str, point: MetricPoint) -> dict:
    return {"pk": history_pk(run_id, point.key), "sk": point.history_sk(), **point.to_attribute()}


# ---- experiments ------------------------------------------------------------------------------


def require_active(kind: str, resource_id: str, stage: str) -> None:
    """MLflow's refusal of a change to a deleted experiment or run (`kind`)."""
    if stage != LifecycleStage.ACTIVE:
        raise MlflowException(
            f"The {kind} {resource_id} must be in the 'active' state. Current state is {stage}.",
            INVALID_PARAMETER_VALUE,
        )


def experiment_to_entity(item: dict) -> Experiment:
    return Experiment(
        experiment_id=item["experiment_id"],
        name=item["name"],
        artifact_location=item["artifact_location"],
        lifecycle_stage=item["lifecycle_stage"],
        tags=[ExperimentTag(k, v) for k, v in item.get("tags", {}).items()],
        creation_time=item.get("creation_time"),
        last_update_time=item.get("last_update_time"),
        workspace=DEFAULT_WORKSPACE_NAME,
    )


# ---- runs -------------------------------------------------------------------------------------


def run_to_info(item: dict) -> RunInfo:
    info = RunInfo(
        run_id=item["run_id"],
        run_name=item.get("name") or "",
        experiment_id=item["experiment_id"],
        user_id=item.get("user_id") or "",
        status=item["status"],
        start_time=item.get("start_time"),
        end_time=item.get("end_time"),
        lifecycle_stage=item["lifecycle_stage"],
        artifact_uri=item.get("artifact_uri"),
    )
    if not info.run_name and (name := item.get("tags", {}).get("mlflow.runName")):
        info._set_run_name(name)
    return info


def latest_metrics(item: dict) -> list[MetricPoint]:
    return [MetricPoint.from_attribute(k, v) for k, v in item.get("metrics", {}).items()]


def run_to_entity(
    item: dict, datasets: dict[tuple[str, str], dict], *, with_model_inputs: bool = True
) -> Run:
    """A Run from its item; `datasets` maps dataset keys (pk, sk) to dataset items."""
    partition = experiment_pk(item["experiment_id"])
    data = RunData(
        metrics=[point.to_entity() for point in latest_metrics(item)],
        params=[Param(k, v) for k, v in item.get("params", {}).items()],
        tags=[RunTag(k, v) for k, v in item.get("tags", {}).items()],
    )
    dataset_inputs = [
        DatasetInput(
            dataset=dataset_to_entity(datasets[(partition, ref["ds"])]),
            tags=[InputTag(k, v) for k, v in ref.get("tags", [])],
        )
        for ref in item.get("inputs", [])
        if (partition, ref["ds"]) in datasets
    ]
    model_inputs = (
        [LoggedModelInput(model_id) for model_id in item.get("model_inputs", [])]
        if with_model_inputs
        else None
    )
    outputs = [LoggedModelOutput(o["model_id"], o["step"]) for o in item.get("model_outputs", [])]
    return Run(
        run_to_info(item),
        data,
        RunInputs(dataset_inputs=dataset_inputs, model_inputs=model_inputs),
        RunOutputs(outputs),
    )


def dataset_refs(items: list[dict]) -> set[tuple[str, str]]:
    """Keys of the dataset items the given runs refer to."""
    return {
        (experiment_pk(i["experiment_id"]), ref["ds"]) for i in items for ref in i.get("inputs", [])
    }


def dataset_to_entity(item: dict) -> Dataset:
    return Dataset(
        name=item["name"],
        digest=item["digest"],
        source_type=item["source_type"],
        source=item["source"],
        schema=item.get("schema"),
        profile=item.get("profile"),
    )


def run_name_from_tags(tags: list[RunTag]) -> str | None:
    return _get_run_name_from_tags(tags)
