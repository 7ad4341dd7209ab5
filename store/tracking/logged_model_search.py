"""Searches of logged models with the meaning MLflow's SQL store gives them.

MLflow parses the filter (`attributes`, `metrics.`, `params.`, `tags.`); a metric clause matches
when any recorded value of that metric (on the given datasets) matches, `datasets` without a
metric clause keeps models with a metric on those datasets, ordering by a metric uses its latest
value (timestamp, then step), missing values sort last, and ties go to the newest model, then
the model id.
"""

from __future__ import annotations

from typing import Any

from mlflow.exceptions import MlflowException

from store.search.compare import NullsLast, compare

# Attribute names a filter or order may use, after MLflow's aliases.
_ALIASES = {
    "creation_time": "creation_timestamp",
    "creation_timestamp_ms": "creation_timestamp",
    "last_updated_timestamp_ms": "last_updated_timestamp",
}
_ATTRIBUTES = {
    "model_id",
    "experiment_id",
    "name",
    "artifact_location",
    "creation_timestamp",
    "last_updated_timestamp",
    "status",
    "lifecycle_stage",
    "model_type",
    "source_run_id",
    "status_message",
}


def parse_experiment_id(experiment_id: Any) -> str:
    try:
        return str(int(experiment_id))
    except (TypeError, ValueError):
        raise MlflowException.invalid_parameter_value(
            f"Invalid experiment ID: {experiment_id!r}"
        ) from None


def _attribute(item: dict, key: str) -> Any:
    key = _ALIASES.get(key, key)
    if key not in _ATTRIBUTES:
        raise MlflowException.invalid_parameter_value(
            f"Invalid attribute key '{key}' for logged models.",
        )
    return item.get(key)


def _on_datasets(metric: dict, datasets: list[dict] | None) -> bool:
    if not datasets:
        return True
    return any(
        metric.get("dataset_name") == d["dataset_name"]
        and ("dataset_digest" not in d or metric.get("dataset_digest") == d["dataset_digest"])
        for d in datasets
    )


def matches(item: dict, comparisons, datasets) -> bool:
    from mlflow.utils.search_logged_model_utils import EntityType

    metrics = list(item.get("metrics", {}).values())
    has_metric_filter = False
    for comp in comparisons:
        kind, key, op, value = comp.entity.type, comp.entity.key, comp.op, comp.value
        if kind == EntityType.ATTRIBUTE:
            if not compare(_attribute(item, key), op, value):
                return False
        elif kind == EntityType.METRIC:
            has_metric_filter = True
            if not any(
                m["key"] == key and _on_datasets(m, datasets) and compare(m["value"], op, value)
                for m in metrics
            ):
                return False
        else:
            entries = item.get("params" if kind == EntityType.PARAM else "tags", {})
            if not compare(entries.get(key), op, value):
                return False
    if datasets and not has_metric_filter:
        return any(_on_datasets(m, datasets) for m in metrics)
    return True


def _latest_metric(item: dict, name: str, dataset_name, dataset_digest) -> float | None:
    candidates = [
        m
        for m in item.get("metrics", {}).values()
        if m["key"] == name
        and (not dataset_name or m.get("dataset_name") == dataset_name)
        and (not dataset_digest or m.get("dataset_digest") == dataset_digest)
    ]
    if not candidates:
        return None
    # MLflow's SQL store: latest timestamp, then step, then the smallest run id.
    candidates.sort(key=lambda m: m["run_id"])
    candidates.sort(key=lambda m: (m["timestamp"], m["step"]), reverse=True)
    return float(candidates[0]["value"])


def model_order(order_by: list[dict[str, Any]] | None):
    fields = []
    seen_creation = seen_model_id = False
    for clause in order_by or []:
        field_name = clause.get("field_name")
        ascending = clause.get("ascending", True)
        if field_name is None:
            raise MlflowException.invalid_parameter_value(
                "`field_name` in the `order_by` clause must be specified."
            )
        if "." in field_name:
            entity, name = field_name.split(".", 1)
            if entity != "metrics":
                raise MlflowException.invalid_parameter_value(
                    f"Invalid order by field name: {field_name}. Only metrics are supported."
                )
            dataset_name, dataset_digest = clause.get("dataset_name"), clause.get("dataset_digest")
            fields.append(
                (
                    lambda item, n=name, dn=dataset_name, dd=dataset_digest: _latest_metric(
                        item, n, dn, dd
                    ),
                    ascending,
                )
            )
            continue
        name = _ALIASES.get(field_name, field_name)
        if name not in _ATTRIBUTES:
            raise MlflowException.invalid_parameter_value(
                f"Invalid order by field name: {field_name}", error_class="ATTRIBUTE_NOT_FOUND"
            )
        seen_creation |= name == "creation_timestamp"
        seen_model_id |= name == "model_id"
        fields.append((lambda item, n=name: item.get(n), ascending))
    if not seen_creation:
        fields.append((lambda item: item.get("creation_timestamp"), False))
    if not seen_model_id:
        fields.append((lambda item: item.get("model_id"), True))
    return lambda item: tuple(NullsLast(get(item), not asc) for get, asc in fields)
