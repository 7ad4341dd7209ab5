"""Issues: problems found in an experiment's traces, with their status and severity.

An issue is one item, ``ISSUE#<issue_id>`` / ``ISSUE`` (store/keys.py), listed on gsi1 under
``ISSUES`` by experiment then creation time, so one index answers both "the issues of an
experiment" (a sort-key prefix) and "every issue". The number of traces that reference an
issue is kept on the issue: an assessment of type ``issue`` writes a marker
``ISSUE#<issue_id>`` / ``TR#<trace_id>`` once per trace and counts it (store/traces/
assessments.py), so a search with trace counts reads nothing more.
"""

from __future__ import annotations

import contextlib
import json
import uuid

from mlflow.entities import ViewType
from mlflow.entities.issue import Issue, IssueSeverity, IssueStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.store.entities.paged_list import PagedList
from mlflow.utils.time import get_current_time_millis

from store.dynamo.errors import ConditionFailed, within_item_limit
from store.dynamo.expressions import Update
from store.dynamo.schema import GSI1
from store.dynamo.table import DynamoTable
from store.keys import (
    ISSUES_INDEX_PK,
    issue_key,
    issue_trace_key,
    issues_index_sk,
    issues_of_experiment_prefix,
)
from store.search.pagination import next_page_token, page_offset
from store.tracking.experiments import normalize_experiment_id, validate_max_results

SEARCH_ISSUES_DEFAULT_MAX_RESULTS = 100


class IssuesMixin:
    """The issue calls of MLflow's tracking AbstractStore (needs ``self.table`` and
    ``_experiment_item``)."""

    table: DynamoTable

    def create_issue(
        self,
        experiment_id: str,
        name: str,
        description: str,
        status: IssueStatus = IssueStatus.PENDING,
        severity: IssueSeverity | None = None,
        root_causes: list[str] | None = None,
        source_run_id: str | None = None,
        categories: list[str] | None = None,
        created_by: str | None = None,
    ) -> Issue:
        experiment = self._experiment_item(experiment_id, ViewType.ACTIVE_ONLY)
        experiment_id = str(experiment["experiment_id"])
        issue_id = f"iss-{uuid.uuid4().hex}"
        now = get_current_time_millis()
        pk, sk = issue_key(issue_id)
        item = {
            "pk": pk,
            "sk": sk,
            "gsi1pk": ISSUES_INDEX_PK,
            "gsi1sk": issues_index_sk(experiment_id, now, issue_id),
            "issue_id": issue_id,
            "experiment_id": experiment_id,
            "name": name,
            "description": description,
            "status": status.value,
            "severity": severity.value if severity else None,
            "root_causes": json.dumps(root_causes) if root_causes else None,
            "source_run_id": source_run_id,
            "categories": json.dumps(categories) if categories else None,
            "created_timestamp": now,
            "last_updated_timestamp": now,
            "created_by": created_by,
        }
        with within_item_limit(f"Issue '{name}'"):
            self.table.put(item, condition="attribute_not_exists(pk)")
        return _issue_of(item)

    def get_issue(self, issue_id: str) -> Issue:
        item = self.table.get(*issue_key(str(issue_id)))
        if item is None:
            raise _missing(issue_id)
        return _issue_of(item)

    def update_issue(
        self,
        issue_id: str,
        status: IssueStatus | None = None,
        name: str | None = None,
        description: str | None = None,
        severity: IssueSeverity | None = None,
    ) -> Issue:
        update = Update().set("last_updated_timestamp", get_current_time_millis()).exists("pk")
        if status is not None:
            update.set("status", status.value)
        if name is not None:
            update.set("name", name)
        if description is not None:
            update.set("description", description)
        if severity is not None:
            update.set("severity", severity.value)
        item = self.table.update_existing(
            *issue_key(str(issue_id)), update, missing=_missing(issue_id), what=f"Issue {issue_id}"
        )
        return _issue_of(item)

    def search_issues(
        self,
        experiment_id: str | None = None,
        filter_string: str | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_trace_count: bool = False,
    ) -> PagedList[Issue]:
        from mlflow.utils.search_utils import SearchIssuesUtils

        validate_max_results(max_results, allow_null=True)
        if max_results is None:
            max_results = SEARCH_ISSUES_DEFAULT_MAX_RESULTS
        query = [experiment_id, filter_string, bool(include_trace_count)]
        offset = page_offset(page_token, "issues", query)
        prefix = None
        if experiment_id is not None:
            prefix = issues_of_experiment_prefix(normalize_experiment_id(experiment_id))
        filters = SearchIssuesUtils.parse_search_filter(filter_string) if filter_string else []
        items = [
            i
            for i in self.table.query(ISSUES_INDEX_PK, index=GSI1, sk_prefix=prefix)
            if all(_matches(i, f) for f in filters)
        ]
        items.sort(key=lambda i: _order(i, include_trace_count), reverse=True)
        page = items[offset : offset + max_results]
        token = next_page_token("issues", offset, max_results, len(items), query)
        counted = bool(include_trace_count)
        return PagedList([_issue_of(i, counted=counted) for i in page], token)

    # ---- trace references (called by the assessment calls) ---------------------------

    def _count_issue_trace(self, issue_id: str, trace_id: str) -> None:
        """A trace now references the issue: counted once per trace."""
        pk, sk = issue_trace_key(issue_id, trace_id)
        try:
            self.table.put({"pk": pk, "sk": sk}, condition="attribute_not_exists(pk)")
        except ConditionFailed:
            return  # counted already
        with contextlib.suppress(ConditionFailed):  # an issue that does not exist: no count
            self.table.update(*issue_key(issue_id), Update().add("trace_count", 1).exists("pk"))

    def _uncount_issue_trace(self, issue_id: str, trace_id: str) -> None:
        """The trace no longer references the issue."""
        try:
            self.table.delete(
                *issue_trace_key(issue_id, trace_id), condition="attribute_exists(pk)"
            )
        except ConditionFailed:
            return
        with contextlib.suppress(ConditionFailed):
            self.table.update(*issue_key(issue_id), Update().add("trace_count", -1).exists("pk"))


def _matches(item: dict, comparison: dict) -> bool:
    value = item.get(comparison["key"])
    if comparison["comparator"] == "=":
        return value == comparison["value"]
    return value is not None and value != comparison["value"]  # SQL: NULL != x is not true


def _order(item: dict, include_trace_count: bool) -> tuple:
    severity = item.get("severity")
    rank = IssueSeverity(severity)._rank if severity else -1
    count = int(item.get("trace_count", 0)) if include_trace_count else 0
    return (rank, count, int(item["created_timestamp"]), item["issue_id"])


def _issue_of(item: dict, *, counted: bool = False) -> Issue:
    return Issue(
        issue_id=item["issue_id"],
        experiment_id=str(item["experiment_id"]),
        name=item["name"],
        description=item["description"],
        status=IssueStatus(item["status"]),
        severity=IssueSeverity(item["severity"]) if item.get("severity") else None,
        root_causes=json.loads(item["root_causes"]) if item.get("root_causes") else None,
        source_run_id=item.get("source_run_id"),
        categories=json.loads(item["categories"]) if item.get("categories") else None,
        created_timestamp=int(item["created_timestamp"]),
        last_updated_timestamp=int(item["last_updated_timestamp"]),
        created_by=item.get("created_by"),
        trace_count=int(item.get("trace_count", 0)) if counted else None,
    )


def _missing(issue_id: str) -> MlflowException:
    return MlflowException(f"Issue with ID '{issue_id}' not found", RESOURCE_DOES_NOT_EXIST)
