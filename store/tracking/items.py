"""Item shapes of the tracking store and their conversion to MLflow entities.

Experiments, name claims, the id counter and datasets (see store/README.md):
- experiment      pk=EXP#<id>             sk=EXP      gsi1pk=EXPS           gsi1sk=<id, padded>
- name claim      pk=EXPNAME#<name>       sk=EXPNAME  (experiment_id, claimed_at)
- id counter      pk=COUNTER#experiment   sk=COUNTER  (value, ADD)
- dataset         pk=EXP#<id>             sk=DS#<sha256(name, digest)>
Runs are several items each: store/tracking/run_keys.py and run_items.py.
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
from store.keys import EXPERIMENTS_INDEX_PK, experiment_pk

EXPERIMENTS_GSI = EXPERIMENTS_INDEX_PK
DATASET_SK_PREFIX = "DS#"
EXPERIMENT_COUNTER = ("COUNTER#experiment", "COUNTER")
_ID_WIDTH = 20
# SQL stores ±inf as ±max double and NaN as 0 with a flag; filters and ordering see those values.
_MAX_DOUBLE = 1.7976931348623157e308


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


def run_to_info(run: dict) -> RunInfo:
    """The RunInfo of a run read back (store/tracking/run_items.py, RunView)."""
    info = RunInfo(
        run_id=run["run_id"],
        run_name=run.get("name") or "",
        experiment_id=run["experiment_id"],
        user_id=run.get("user_id") or "",
        status=run["status"],
        start_time=run.get("start_time"),
        end_time=run.get("end_time"),
        lifecycle_stage=run["lifecycle_stage"],
        artifact_uri=run.get("artifact_uri"),
    )
    return info


def latest_metrics(run: dict) -> list[MetricPoint]:
    return [MetricPoint.from_attribute(k, v) for k, v in run.get("metrics", {}).items()]


def run_to_entity(
    run: dict, datasets: dict[tuple[str, str], dict], *, with_model_inputs: bool = True
) -> Run:
    """A Run from its view; `datasets` maps dataset keys (pk, sk) to dataset items."""
    partition = experiment_pk(run["experiment_id"])
    data = RunData(
        metrics=[point.to_entity() for point in latest_metrics(run)],
        params=[Param(k, v) for k, v in run.get("params", {}).items()],
        tags=[RunTag(k, v) for k, v in run.get("tags", {}).items()],
    )
    dataset_inputs = [
        DatasetInput(
            dataset=dataset_to_entity(datasets[(partition, ref["ds"])]),
            tags=[InputTag(k, v) for k, v in ref.get("tags", [])],
        )
        for ref in run.get("inputs", [])
        if (partition, ref["ds"]) in datasets
    ]
    model_inputs = (
        [LoggedModelInput(model_id) for model_id in run.get("model_inputs", [])]
        if with_model_inputs
        else None
    )
    outputs = [LoggedModelOutput(o["model_id"], o["step"]) for o in run.get("model_outputs", [])]
    return Run(
        run_to_info(run),
        data,
        RunInputs(dataset_inputs=dataset_inputs, model_inputs=model_inputs),
        RunOutputs(outputs),
    )


def dataset_refs(runs: list[dict]) -> set[tuple[str, str]]:
    """Keys of the dataset items the given runs refer to."""
    return {
        (experiment_pk(r["experiment_id"]), ref["ds"]) for r in runs for ref in r.get("inputs", [])
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
