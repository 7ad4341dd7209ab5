"""A run's items (store/tracking/run_keys.py says where they live) and the run they make up.

Writes build items here; reads put a run's items back together into one plain dict (`RunView`
below: the run's attributes, `params`, `tags`, latest `metrics` as `{v, t, s}`, `inputs`,
`model_inputs`, `model_outputs`), which search filters and orders read and
`store/tracking/items.py` turns into MLflow entities. A position whose core item is missing (a
run being created, or removed by `mlflow gc`) is no run: its other items are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

from store.dynamo.values import float_to_dynamo
from store.keys import run_key
from store.tracking.items import MetricPoint
from store.tracking.run_keys import (
    ATTRIBUTE,
    HIDDEN_NAME_COLUMN,
    PARAM,
    STATUS_COLUMN,
    TAG,
    child_kind,
    child_sk,
    content_pk,
    filter_pk,
    filter_sk,
    metric_order,
    position_of,
    step_and_timestamp,
)

RunView = dict[str, Any]  # one run as searches and entities read it (see the module docstring)
_CORE_FIELDS = (
    "run_id",
    "experiment_id",
    "user_id",
    "status",
    "start_time",
    "end_time",
    "deleted_time",
    "lifecycle_stage",
    "artifact_uri",
)

# What `view` reads of a run's content items: searches ask DynamoDB for these attributes only
# (an item's index keys repeat its value and position; a wide run's page is mostly those).
VIEW_FIELDS = (
    "sk",
    *_CORE_FIELDS,
    "ml",
    "ms",
    "v",  # params, tags
    "k",
    "hidden",
    "ds",  # dataset inputs
    "name",
    "digest",
    "tags",
    "model_id",  # model inputs and outputs
    "step",
)


# ---- items a write puts -----------------------------------------------------------------------


def locator_item(run_id: str, experiment_id: str, position: str, artifact_uri: str) -> dict:
    """What a run id leads to; immutable (the gateway reads `experiment_id`)."""
    pk, sk = run_key(run_id)
    return {
        "pk": pk,
        "sk": sk,
        "run_id": run_id,
        "experiment_id": experiment_id,
        "pos": position,
        "artifact_uri": artifact_uri,
    }


def core_item(position: str, fields: dict) -> dict:
    experiment_id = fields["experiment_id"]
    return {
        "pk": content_pk(experiment_id),
        "sk": position,
        **{name: fields.get(name) for name in _CORE_FIELDS},
        "ml": 0,
        "ms": 0,
        **status_keys(experiment_id, fields["status"], position),
    }


def status_keys(experiment_id: str, status: str, position: str) -> dict:
    """The core's entry in the status column of the filter index."""
    return {
        "gsi2pk": filter_pk(experiment_id, ATTRIBUTE, STATUS_COLUMN),
        "gsi2sk": filter_sk(status, position),
    }


def param_item(experiment_id: str, position: str, key: str, value: str) -> dict:
    return _keyed_value(experiment_id, position, PARAM, key, value)


def tag_item(experiment_id: str, position: str, key: str, value: str) -> dict:
    return _keyed_value(experiment_id, position, TAG, key, value)


def hidden_name_keys(experiment_id: str, position: str, name: str) -> dict:
    """A deleted mlflow.runName tag keeps the run's name, out of the tag column."""
    return {
        "gsi2pk": filter_pk(experiment_id, ATTRIBUTE, HIDDEN_NAME_COLUMN),
        "gsi2sk": filter_sk(name, position),
    }


def _keyed_value(experiment_id: str, position: str, kind: str, key: str, value: str) -> dict:
    sk, stored_key = child_sk(position, kind, key)
    item = {"pk": content_pk(experiment_id), "sk": sk, "v": value}
    if value is not None:  # a NULL value matches no filter: it has no index entry
        item["gsi2pk"] = filter_pk(experiment_id, kind, key)
        item["gsi2sk"] = filter_sk(value, position)
    if stored_key is not None:
        item["k"] = stored_key
    return item


def bucket_entry(point: MetricPoint) -> dict:
    """A metric's latest value in a bucket: its order and its value."""
    return {"o": metric_order(point.step, point.timestamp, point.rank), "v": _value(point)}


def _value(point: MetricPoint) -> Any:
    return float_to_dynamo(point.value)


# ---- runs read back -------------------------------------------------------------------------


def assemble(content: Iterable[dict], buckets: Iterable[dict]) -> list[RunView]:
    """The runs the items make up, in position order; positions without a core are dropped."""
    latest = latest_by_position(buckets)
    return [
        view(group, latest.get(position, {}))
        for position, group in group_by_position(content)
        if group[0]["sk"] == position
    ]


def group_by_position(items: Iterable[dict]) -> Iterator[tuple[str, list[dict]]]:
    """Consecutive items of one position (items come in sort-key order)."""
    position, group = None, []
    for item in items:
        current = position_of(item["sk"])
        if current != position and group:
            yield position, group
            group = []
        position = current
        group.append(item)
    if group:
        yield position, group


def latest_by_position(buckets: Iterable[dict]) -> dict[str, dict[str, dict]]:
    """Per position, each metric key's newest entry across the run's buckets (a key is in two
    buckets while a split moves it: both hold the same entry or the newer one wins)."""
    found: dict[str, dict[str, dict]] = {}
    for bucket in buckets:
        merged = found.setdefault(position_of(bucket["sk"]), {})
        merge_entries(merged, bucket.get("m", {}))
    return found


def merge_entries(merged: dict[str, dict], entries: dict[str, dict]) -> None:
    for key, entry in entries.items():
        known = merged.get(key)
        if known is None or entry["o"] > known["o"]:
            merged[key] = entry


def view(items: list[dict], latest: dict[str, dict]) -> RunView:
    """One run from its content items (core first) and its metrics' newest entries."""
    core = items[0]
    position = core["sk"]
    run: RunView = {name: core.get(name) for name in _CORE_FIELDS}
    run.update(
        pos=position,
        ml=core.get("ml", 0),
        ms=core.get("ms", 0),
        params={},
        tags={},
        inputs=[],
        model_inputs=[],
        model_outputs=[],
        name=None,
        metrics={key: latest_attribute(entry) for key, entry in latest.items()},
    )
    for item in items[1:]:
        add_child(run, position, item)
    return run


def add_child(run: RunView, position: str, item: dict) -> None:
    kind = child_kind(position, item["sk"])
    if kind in (PARAM, TAG):
        key = item.get("k") or item["sk"].split("#", 4 if position[0] == "T" else 3)[-1]
        if kind == PARAM:
            run["params"][key] = item["v"]
        elif item.get("hidden"):
            run["name"] = item["v"]
        else:
            run["tags"][key] = item["v"]
            if key == MLFLOW_RUN_NAME:
                run["name"] = item["v"]
    elif kind == "I":
        run["inputs"].append(
            {"ds": item["ds"], "name": item["name"], "digest": item["digest"], "tags": item["tags"]}
        )
    elif kind == "MI":
        run["model_inputs"].append(item["model_id"])
    elif kind == "MO":
        run["model_outputs"].append({"model_id": item["model_id"], "step": item["step"]})


def latest_attribute(entry: dict) -> dict:
    """A bucket entry as the `{v, t, s}` MetricPoint.from_attribute reads."""
    step, timestamp = step_and_timestamp(entry["o"])
    return {"v": entry["v"], "t": timestamp, "s": step}
