"""Issues on DynamoDB answer as MLflow's SqlAlchemyStore (sqlite): create, get, update, search
(experiment, filter, severity order, trace counts, pages), with the same errors; and the
requests each call makes."""

from __future__ import annotations

import time
import uuid

from mlflow.entities import AssessmentSource
from mlflow.entities.assessment import IssueReference
from mlflow.entities.issue import IssueSeverity, IssueStatus
from mlflow.entities.trace_info import TraceInfo
from mlflow.entities.trace_location import TraceLocation
from mlflow.entities.trace_state import TraceState
from store_support import outcome_of, requests_of

HIGH, LOW = IssueSeverity.HIGH, IssueSeverity.LOW
RUNS: dict[str, str] = {}  # each store's run ids → the names the steps use


def view(issue) -> tuple:
    return (
        issue.name,
        issue.description,
        issue.experiment_id,
        issue.status,
        issue.severity,
        issue.root_causes,
        RUNS.get(issue.source_run_id, issue.source_run_id),
        issue.categories,
        issue.created_by,
        issue.trace_count,
    )


def outcome(call, *args, **kwargs):
    return outcome_of(view, r"iss-[0-9a-f]{32}", call, *args, **kwargs)


def pages(store, size: int, **search) -> list[list[str]]:
    seen, token = [], None
    while True:
        page = store.search_issues(max_results=size, page_token=token, **search)
        seen.append([i.name for i in page])
        token = page.token
        if not token:
            return seen


def created(store, experiment_id, name, **more):
    time.sleep(0.002)  # distinct creation times: ties are then broken by time alone
    return store.create_issue(experiment_id, name, f"about {name}", **more)


def trace_in(store, experiment_id: str) -> str:
    trace_id = f"tr-{uuid.uuid4().hex}"
    location = TraceLocation.from_experiment_id(experiment_id)
    store.start_trace(TraceInfo(trace_id, location, 1_700_000_000_000, TraceState.OK))
    return trace_id


def reference(store, issue, trace_id: str):
    return store.create_assessment(
        IssueReference(
            issue_id=issue.issue_id,
            issue_name=issue.name,
            trace_id=trace_id,
            source=AssessmentSource("HUMAN", "rita"),
        )
    )


def test_issues_answer_as_mlflows_store(moto_store, sql_store):
    answers = []
    for store in (moto_store, sql_store):
        experiment = store.create_experiment("issues")
        other = store.create_experiment("other")
        gone = store.create_experiment("gone")
        store.delete_experiment(gone)
        r1 = store.create_run(experiment, "u", 0, [], "r1").info.run_id
        r2 = store.create_run(other, "u", 0, [], "r2").info.run_id
        RUNS.update({r1: "r1", r2: "r2"})
        slow = created(store, experiment, "slow", severity=LOW, source_run_id=r1)
        wrong = created(store, experiment, "wrong", severity=HIGH, categories=["facts"])
        rude = created(store, experiment, "rude", root_causes=["prompt"], created_by="rita")
        loop = created(store, experiment, "loop", severity=LOW, status=IssueStatus.RESOLVED)
        created(store, other, "elsewhere", severity=HIGH, source_run_id=r2)
        traces = [trace_in(store, experiment) for _ in range(3)]
        for trace_id in traces:
            reference(store, loop, trace_id)
        reference(store, slow, traces[0])
        twice = reference(store, slow, traces[0])  # the same trace counts once
        steps = [
            outcome(created, store, gone, "x"),
            outcome(created, store, "4242", "x"),
            outcome(store.get_issue, wrong.issue_id),
            outcome(store.get_issue, "iss-0123456789abcdef0123456789abcdef"),
            outcome(store.search_issues, experiment_id=experiment),
            outcome(store.search_issues, experiment_id=experiment, include_trace_count=True),
            outcome(store.search_issues),
            outcome(store.search_issues, experiment_id="4242"),
            outcome(store.search_issues, experiment_id="abc"),
            outcome(store.search_issues, filter_string="status = 'resolved'"),
            outcome(store.search_issues, filter_string=f"source_run_id != '{r1}'"),
            outcome(
                store.search_issues,
                experiment_id=experiment,
                filter_string=f"status = 'pending' AND source_run_id = '{r1}'",
            ),
            outcome(store.search_issues, filter_string="name = 'x'"),
            outcome(store.search_issues, filter_string="status > 'a'"),
            outcome(store.search_issues, max_results=0),
            outcome(store.search_issues, max_results=50001),
            outcome(store.search_issues, page_token="garbage"),
            pages(store, 2),
            pages(store, 1, experiment_id=experiment, include_trace_count=True),
            outcome(store.update_issue, rude.issue_id, severity=HIGH, name="very rude"),
            outcome(store.update_issue, slow.issue_id, status=IssueStatus.RESOLVED),
            outcome(store.update_issue, "iss-0123456789abcdef0123456789abcdef", name="n"),
            outcome(store.search_issues, experiment_id=experiment),
        ]
        store.delete_assessment(traces[0], twice.assessment_id)
        store.delete_assessment(
            traces[1], store.get_trace_info(traces[1]).assessments[0].assessment_id
        )
        steps.append(
            outcome(store.search_issues, experiment_id=experiment, include_trace_count=True)
        )
        answers.append(steps)
    for step, (ours, theirs) in enumerate(zip(*answers, strict=True)):
        assert ours == theirs, step


def test_issue_calls_make_the_documented_requests(moto_store):
    experiment = moto_store.create_experiment("issues")
    moto_store.table.round_trips.reset()
    issue = moto_store.create_issue(experiment, "slow", "too slow")
    assert moto_store.table.round_trips.by_operation() == {"GetItem": 1, "PutItem": 1}
    assert requests_of(moto_store, moto_store.get_issue, issue.issue_id) == {"GetItem": 1}
    assert requests_of(moto_store, moto_store.update_issue, issue.issue_id, name="x") == {
        "UpdateItem": 1
    }
    assert requests_of(
        moto_store, moto_store.search_issues, experiment_id=experiment, include_trace_count=True
    ) == {"Query": 1}
    trace_id = trace_in(moto_store, experiment)
    first = requests_of(moto_store, reference, moto_store, issue, trace_id)
    again = requests_of(moto_store, reference, moto_store, issue, trace_id)
    assert first["PutItem"] == 1 and first["UpdateItem"] == 2  # marker, assessment + count
    assert again["PutItem"] == 1 and again["UpdateItem"] == 1  # the marker exists: no count
