"""The simulator and the running gateway agree on every cell of the roles × calls matrix,
and on what the audit lines they both read record (matrix_world.py sets both up)."""

from __future__ import annotations

import json
import shutil

from matrix_world import (
    ADMINS,
    OPEN,
    gateway_decisions,
    idless_dataset_search,
    idless_issue_search,
    ids_of,
    pid,
    simulate,
    special,
    user_of,
)
from sample_requests import build, requests_by_action

from gateway.authz.policies import load_policies
from gateway.simulate.cells import COLUMNS
from gateway.simulate.matrix import build_matrix
from gateway.simulate.request import simulate_request
from gateway.simulate.sources import FileSource
from store.vocabulary import EXPERIMENT, WORKSPACE


def test_simulator_and_gateway_agree_on_every_cell(world):
    bundle = world["bundle"]
    matrix = build_matrix(bundle, ADMINS)
    source = FileSource(world["data"])
    cells, jobs = [], []
    for index, rtype, column in world["columns"]:
        ids = ids_of(index)
        user, groups = user_of(index, column)
        samples = requests_by_action(ids, OPEN)
        for action in matrix.actions[rtype]:
            sample = special(action, ids) or samples.get(action)
            if rtype == WORKSPACE and action == "SearchEvaluationDatasets":
                sample = idless_dataset_search()
            if rtype == WORKSPACE and action == "SearchIssues":
                sample = idless_issue_search()
            assert sample is not None, f"no request reaches {action}"
            cells.append((rtype, column, action))
            jobs.append((sample, user, groups))
    decisions = gateway_decisions(world, jobs)
    against_matrix, differences = [], []
    for (rtype, column, action), (sample, user, groups), gateway in zip(
        cells, jobs, decisions, strict=True
    ):
        if sample.route is not None:
            simulated = simulate(bundle, source, sample, user, groups).forwarded
            if simulated != gateway:
                differences.append((rtype, column.key, action, "request", simulated, gateway))
        cell = matrix.cells[(rtype, action, column.key)]
        if action == "GraphQL" and not column.admin:
            against_matrix.append((column.key, action, gateway))
        elif cell.allowed != gateway:
            differences.append((rtype, column.key, action, "matrix", cell.outcome, gateway))
    assert not differences, differences[:20]
    assert len(cells) == sum(len(matrix.actions[t]) * len(COLUMNS[t]) for t in matrix.actions)
    # the known exceptions are denials by the gateway, never an allow the matrix lacks
    assert against_matrix and not any(allowed for _, _, allowed in against_matrix)


def test_every_cell_was_audited_with_the_decision_fields_replay_reads(world):
    lines = [json.loads(x) for x in world["audit"].read_text().splitlines() if x]
    decisions = [x for x in lines if x.get("type") == "decision"]
    assert decisions
    needed = {
        "time",
        "request_id",
        "principal",
        "username",
        "groups",
        "action",
        "resource",
        "decided_on",
        "decision",
        "policies",
        "policy_revision",
    }
    assert all(needed <= set(x) for x in decisions)


def test_a_private_group_member_is_denied_by_the_gateway_and_the_simulator(world):
    index, rtype, column = next(
        (i, t, c) for i, t, c in world["columns"] if c.key == "private:group:manager"
    )
    assert rtype == EXPERIMENT and column.via_group
    user, groups = user_of(index, column)
    sample = build(
        next(
            r
            for r in __import__("gateway.routing", fromlist=["all_routes"]).all_routes()
            if r.path == "/api/2.0/mlflow/runs/get" and r.method == "GET"
        ),
        ids_of(index),
        OPEN,
    )
    assert gateway_decisions(world, [(sample, user, groups)]) == [False]
    result = simulate_request(
        world["bundle"],
        FileSource(world["data"]),
        pid(user),
        groups,
        sample.method,
        sample.target,
    )
    assert not result.allowed and "experiment-private" in result.result.decision.policy_ids
    assert WORKSPACE in COLUMNS


def test_replaying_the_gateway_audit_log_finds_what_a_narrowed_policy_flips(world, tmp_path):
    from gateway.simulate.cli import main

    experiment_columns = [(i, c) for i, t, c in world["columns"] if t == EXPERIMENT]
    jobs = []
    for index, column in experiment_columns:
        sample = requests_by_action(ids_of(index), OPEN)["LogMetric"]
        jobs.append((sample, *user_of(index, column)))
    allowed = gateway_decisions(world, jobs)
    narrowed = tmp_path / "policies"
    shutil.copytree(world["bundle"].directory, narrowed)
    editor = narrowed / "11_experiment_editor.cedar"
    editor.write_text(editor.read_text().replace('    Action::"LogMetric",\n', ""))
    lines = [json.loads(x) for x in world["audit"].read_text().splitlines() if x]
    expected = {
        x["request_id"]
        for x in lines
        if x.get("type") == "decision"
        and x["action"] == "LogMetric"
        and x["decision"] == "allow"
        and "admins" not in x["groups"]
    }
    assert len(expected) >= sum(allowed) - 1  # every editor-like column, all but the admin

    from gateway.simulate.replay import read_audit, replay
    from gateway.simulate.sources import TableSource

    report = replay(
        read_audit(world["audit"]), load_policies(narrowed), TableSource(world["store_uri"]), ADMINS
    )
    assert {f.line.request_id for f in report.flips} == expected
    assert all(f.line.action == "LogMetric" and not f.now_allowed for f in report.flips)
    code = main(
        [
            "replay",
            str(world["audit"]),
            "--policies",
            str(narrowed),
            "--table",
            world["store_uri"],
            "--admin-groups",
            "admins",
        ]
    )
    assert code == 1
    unchanged = main(
        [
            "replay",
            str(world["audit"]),
            "--policies",
            str(world["bundle"].directory),
            "--table",
            world["store_uri"],
            "--admin-groups",
            "admins",
        ]
    )
    assert unchanged == 0


def test_check_and_request_read_bindings_from_the_live_table(world, capsys):
    from gateway.simulate.cli import main

    index, column = next((i, c) for i, t, c in world["columns"] if c.key == "group:reader")
    user, groups = user_of(index, column)
    gateway_decisions(world, [(requests_by_action(ids_of(index), OPEN)["GetRun"], user, groups)])
    table = ["--table", world["store_uri"]]
    # the gateway recorded the user name, so --user may name the user as people know it
    args = ["check", "--user", user, "--groups", groups[0], "--action", "LogMetric"]
    assert main([*args, "--resource", f"run:{ids_of(index).run}", *table]) == 1
    out = capsys.readouterr().out
    assert f"{user} is reader through group {groups[0]} on experiment {index}" in out
    assert out.rstrip().count("editors may LogMetric") == 1
    target = f"/api/2.0/mlflow/runs/get?run_id={ids_of(index).run}"
    assert main(["request", "--user", user, "--groups", groups[0], *table, "GET", target]) == 0
    assert f"run {ids_of(index).run} → Experiment::'{index}': allow" in capsys.readouterr().out
