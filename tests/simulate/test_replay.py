"""`replay`: recorded decisions (audit lines) decided again with other policies."""

from __future__ import annotations

import io
import json

from sim_support import POLICIES, copy_policies

from gateway.authz.decide import Authorizer
from gateway.observe.audit import AuditLog
from gateway.routing.parse import ResourceRef
from gateway.simulate.bindings import load_bindings
from gateway.simulate.cli import main
from gateway.simulate.replay import read_audit, replay
from gateway.simulate.sources import FileSource
from store.handler.identity import Principal

CALLS = [
    # (user, groups, action, resource kind, id)
    ("rita", (), "GetRun", "run", "run-1"),
    ("rita", (), "LogMetric", "run", "run-1"),
    ("gus", ("vision",), "GetRun", "run", "run-1"),
    ("gus", ("vision",), "GetExperiment", "experiment", "8"),
    ("bob", (), "LogMetric", "run", "run-8"),
    ("bob", (), "DeleteRun", "run", "run-8"),
    ("ada", ("admins",), "LogMetric", "experiment", "7"),
    ("eddie", (), "DeleteModelVersion", "registered_model", "churn"),
    ("alice", (), "GetModelVersion", "registered_model", "churn"),
    ("ada", ("admins",), "GetRun", "run", "ghost"),  # unresolvable: not replayed
]


def _record(tmp_path, bundle, bindings_file):
    """An audit log written by the gateway's own AuditLog for real decisions."""
    data = load_bindings(bindings_file)
    stream = io.StringIO()
    audit = AuditLog(stream=stream)
    authorizer = Authorizer(bundle, ("admins",))
    for n, (user, groups, action, kind, rid) in enumerate(CALLS):
        principal = Principal(user, user, groups=groups)
        decision = authorizer.decide(principal, action, [ResourceRef(kind, rid)], data.lookup)
        audit.decision(f"req-{n}", principal, decision, method="POST", path="/x", latency_ms=0.1)
    audit.binding_change(
        "req-x",
        Principal("bob", "bob"),
        change="grant",
        resource_kind="experiment",
        resource_id="7",
        user="z",
        role="reader",
    )
    path = tmp_path / "audit.jsonl"
    path.write_text(stream.getvalue())
    return path


def test_unchanged_policies_flip_nothing(tmp_path, bundle, bindings_file):
    audit = _record(tmp_path, bundle, bindings_file)
    report = replay(
        read_audit(audit), bundle, FileSource(load_bindings(bindings_file)), ("admins",)
    )
    assert report.flips == ()
    assert report.replayed == len(CALLS) - 1 and report.skipped == 1
    assert report.undetermined == 1  # DeleteModelVersion: depends on the version's stage


def test_a_narrowed_editor_role_flips_exactly_the_recorded_log_metric_allows(
    tmp_path, bundle, bindings_file, capsys
):
    audit = _record(tmp_path, bundle, bindings_file)
    narrowed = copy_policies(tmp_path)
    editor = narrowed / "11_experiment_editor.cedar"
    editor.write_text(editor.read_text().replace('    Action::"LogMetric",\n', ""))
    code = main(
        ["replay", str(audit), "--policies", str(narrowed), "--bindings", str(bindings_file)]
    )
    out = capsys.readouterr().out
    assert code == 1
    # bob manages experiment 8 and logged a metric: that allow would now be a deny; the
    # admin's LogMetric stays allowed (admin-all) and rita's was a deny already
    assert "req-4 bob LogMetric on experiment 8: ALLOW -> DENY" in out
    assert "recorded: experiment-editor" in out
    assert "1 would change" in out and out.count("-> DENY") == 1


def test_a_narrowed_reader_role_flips_reads(tmp_path, bundle, bindings_file):
    audit = _record(tmp_path, bundle, bindings_file)
    narrowed = copy_policies(tmp_path)
    reader = narrowed / "10_experiment_reader.cedar"
    reader.write_text(reader.read_text().replace('    Action::"GetRun",\n', ""))
    from gateway.authz.policies import load_policies

    report = replay(
        read_audit(audit),
        load_policies(narrowed),
        FileSource(load_bindings(bindings_file)),
        ("admins",),
    )
    assert sorted(f.line.request_id for f in report.flips) == ["req-0", "req-2"]
    assert all(not f.now_allowed and "no policy permits GetRun" in f.reason for f in report.flips)


def test_malformed_audit_lines_are_located(tmp_path, capsys):
    path = tmp_path / "audit.jsonl"
    good = {
        "type": "decision",
        "principal": "a",
        "groups": [],
        "action": "GetRun",
        "decided_on": ["Experiment", "1"],
        "decision": "allow",
    }
    path.write_text(json.dumps(good) + "\n{not json\n")
    assert main(["replay", str(path), "--policies", str(POLICIES)]) == 4
    assert "audit.jsonl:2:2: " in capsys.readouterr().err


def test_narrowed_search_lines_are_replayed_per_experiment_and_old_ones_skipped(tmp_path):
    base = {"type": "decision", "principal": "gus", "groups": ["vision"], "action": "SearchRuns"}
    lines = [
        # written before searches recorded their narrowing: an allow decided by nothing
        {**base, "decided_on": ["Experiment", "8"], "decision": "allow", "policies": []},
        {
            **base,
            "decided_on": ["Experiment", "8"],
            "decision": "deny",
            "policies": ["experiment-private"],
            "narrowed_from": ["9", "8"],
            "kept": [],
            "dropped": ["9", "8"],
            "answered": "empty",
        },
    ]
    path = tmp_path / "audit.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    recorded = list(read_audit(path))
    assert recorded[0] is None
    assert [(r.resource.id, r.allowed) for r in recorded[1:]] == [("8", False), ("9", False)]
    path.write_text(json.dumps({**lines[1], "dropped": "8"}) + "\n")
    assert main(["replay", str(path), "--policies", str(POLICIES)]) == 4
