"""Assessments (feedback, expectations, issue references) kept inside their trace's INFO item.

Each assessment is the column set MLflow's SQL store keeps for it, so every read, search and
update gives the same values; a create, update or delete is one UpdateItem on the trace.
"""

from __future__ import annotations

from mlflow.entities import Assessment
from mlflow.entities.assessment import Expectation, Feedback
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST
from mlflow.utils.time import get_current_time_millis

from store.dynamo.errors import ConditionFailed
from store.dynamo.expressions import Update
from store.keys import trace_key
from store.traces.items import assessment_columns, assessment_from_columns, is_live

ISSUE_TYPE = "issue"  # an assessment referencing an issue: its name is the issue id


class AssessmentsMixin:
    """Assessment calls of MLflow's tracking ``AbstractStore``."""

    def create_assessment(self, assessment: Assessment) -> Assessment:
        trace = self._trace_item_for_assessment(assessment.trace_id)
        columns = assessment_columns(assessment)
        existing = trace.get("assessments") or {}
        if columns["assessment_id"] in existing:
            raise _duplicate(columns["assessment_id"], assessment.trace_id)
        update = Update().set(("assessments", columns["assessment_id"]), columns)
        if overrides := columns.get("overrides"):
            if overrides not in existing:
                raise MlflowException(
                    f"Assessment with ID '{overrides}' not found for trace '{assessment.trace_id}'",
                    RESOURCE_DOES_NOT_EXIST,
                )
            update.set(("assessments", overrides, "valid"), False)
        self._write_assessments(assessment.trace_id, update, new=columns["assessment_id"])
        if columns.get("assessment_type") == ISSUE_TYPE:  # the issue's trace count
            self._count_issue_trace(columns["name"], assessment.trace_id)
        return assessment_from_columns(columns)

    def get_assessment(self, trace_id: str, assessment_id: str) -> Assessment:
        return assessment_from_columns(self._assessment_columns(trace_id, assessment_id))

    def update_assessment(
        self,
        trace_id: str,
        assessment_id: str,
        name: str | None = None,
        expectation=None,
        feedback=None,
        rationale: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Assessment:
        current = self._assessment_columns(trace_id, assessment_id)
        existing = assessment_from_columns(current)
        if expectation is not None and feedback is not None:
            raise MlflowException.invalid_parameter_value(
                "Cannot specify both `expectation` and `feedback` parameters."
            )
        if expectation is not None and not isinstance(existing, Expectation):
            raise MlflowException.invalid_parameter_value(
                "Cannot update expectation value on a Feedback assessment."
            )
        if feedback is not None and not isinstance(existing, Feedback):
            raise MlflowException.invalid_parameter_value(
                "Cannot update feedback value on an Expectation assessment."
            )
        merged_metadata = None
        if existing.metadata or metadata:
            merged_metadata = {**(existing.metadata or {}), **(metadata or {})}
        now = get_current_time_millis()
        common = {
            "name": name if name is not None else existing.name,
            "source": existing.source,
            "trace_id": trace_id,
            "metadata": merged_metadata,
            "span_id": existing.span_id,
            "create_time_ms": existing.create_time_ms,
            "last_update_time_ms": now,
        }
        if isinstance(existing, Expectation):
            value = expectation.value if expectation is not None else existing.value
            updated = Expectation(value=value, **common)
        else:
            value, error = (
                (feedback.value, feedback.error)
                if feedback is not None
                else (existing.value, existing.error)
            )
            updated = Feedback(
                value=value,
                error=error,
                rationale=rationale if rationale is not None else existing.rationale,
                **common,
            )
        updated.assessment_id = existing.assessment_id
        updated.overrides = existing.overrides
        if getattr(existing, "run_id", None):
            updated.run_id = existing.run_id
        columns = assessment_columns(updated)
        columns["valid"] = current.get("valid", True)
        columns["created_timestamp"] = current["created_timestamp"]
        self._write_assessments(
            trace_id,
            Update().set(("assessments", assessment_id), columns),
            must_exist=assessment_id,
        )
        return assessment_from_columns(columns)

    def delete_assessment(self, trace_id: str, assessment_id: str) -> None:
        trace = self._trace_item_for_assessment(trace_id)
        existing = trace.get("assessments") or {}
        doomed = existing.get(assessment_id)
        if doomed is None:
            return
        update = Update().remove(("assessments", assessment_id))
        if (overrides := doomed.get("overrides")) and overrides in existing:
            update.set(("assessments", overrides, "valid"), True)
        self._write_assessments(trace_id, update)
        if doomed.get("assessment_type") == ISSUE_TYPE and not any(
            c.get("assessment_type") == ISSUE_TYPE and c.get("name") == doomed.get("name")
            for key, c in existing.items()
            if key != assessment_id
        ):  # no other reference to that issue left on the trace
            self._uncount_issue_trace(doomed["name"], trace_id)

    # ---- helpers -------------------------------------------------------------------------------

    def _trace_item_for_assessment(self, trace_id: str) -> dict:
        item = self.table.get(*trace_key(trace_id))
        if not is_live(item):
            raise MlflowException(
                f"Trace with request_id '{trace_id}' not found", RESOURCE_DOES_NOT_EXIST
            )
        return item

    def _assessment_columns(self, trace_id: str, assessment_id: str) -> dict:
        trace = self._trace_item_for_assessment(trace_id)
        columns = (trace.get("assessments") or {}).get(assessment_id)
        if columns is None:
            raise MlflowException(
                f"Assessment with ID '{assessment_id}' not found for trace '{trace_id}'",
                RESOURCE_DOES_NOT_EXIST,
            )
        return columns

    def _write_assessments(
        self,
        trace_id: str,
        update: Update,
        must_exist: str | None = None,
        new: str | None = None,
    ):
        update.exists(("assessments", must_exist) if must_exist else "assessments")
        if new is not None:  # an id the client may have chosen: never overwrites another
            update.missing(("assessments", new))
        try:
            self.table.update(*trace_key(trace_id), update)
        except ConditionFailed:
            if (
                new is not None
                and new in (self._trace_item_for_assessment(trace_id)["assessments"])
            ):
                raise _duplicate(new, trace_id) from None
            raise MlflowException(
                f"Trace with request_id '{trace_id}' not found", RESOURCE_DOES_NOT_EXIST
            ) from None


def _duplicate(assessment_id: str, trace_id: str) -> MlflowException:
    return MlflowException(
        f"Assessment with ID '{assessment_id}' already exists for trace '{trace_id}'",
        RESOURCE_ALREADY_EXISTS,
    )
