"""`check`: the decision, its determining policies with file and line, and the reason."""

from __future__ import annotations

import pytest

from gateway.simulate.bindings import load_bindings
from gateway.simulate.check import parse_resource, run_check, version_context
from gateway.simulate.cli import main

ADMINS = ("admins",)


def _check(bundle, bindings_file, user, groups, action, resource, context=None):
    data = load_bindings(bindings_file)
    return run_check(
        bundle, user, groups, action, parse_resource(resource), data.lookup, ADMINS, context
    )


def test_no_role_names_the_role_that_may(bundle, bindings_file):
    result = _check(bundle, bindings_file, "alice", (), "LogMetric", "experiment:7")
    assert not result.allowed and result.decision.policy_ids == ()
    assert result.reason == (
        "DENY: no policy permits LogMetric; alice has no role on experiment 7; "
        "editors may LogMetric"
    )


def test_a_reader_through_a_group_is_told_editors_may(bundle, bindings_file):
    result = _check(bundle, bindings_file, "gus", ("vision",), "LogMetric", "experiment:7")
    assert "gus is reader through group vision on experiment 7" in result.reason
    assert result.reason.endswith("editors may LogMetric")


def test_allow_names_the_permitting_policy(bundle, bindings_file):
    result = _check(bundle, bindings_file, "rita", (), "GetRun", "run:run-1")
    assert result.allowed and result.decision.policy_ids == ("experiment-reader",)
    assert result.decision.target == ("Experiment", "7")
    assert result.reason.startswith("ALLOW: experiment-reader permits GetRun; rita is reader")


def test_private_experiment_names_the_forbid_and_the_ignored_group(bundle, bindings_file):
    result = _check(bundle, bindings_file, "gus", ("vision",), "GetRun", "experiment:8")
    assert result.decision.policy_ids == ("experiment-private",)
    assert "group bindings do not apply: experiment 8 is private" in result.reason
    assert "readers bound directly may GetRun" in result.reason


def test_the_production_guard_with_version_facts(bundle, bindings_file):
    prod = version_context("3", "Production")
    result = _check(bundle, bindings_file, "eddie", (), "DeleteModelVersion", "model:churn", prod)
    assert result.decision.policy_ids == ("model-protect-production",)
    staging = version_context("1", "Staging")
    assert _check(
        bundle, bindings_file, "eddie", (), "DeleteModelVersion", "model:churn", staging
    ).allowed


def test_unknown_resources_are_denied_with_the_error(bundle, bindings_file):
    result = _check(bundle, bindings_file, "ada", ("admins",), "GetRun", "run:ghost")
    assert not result.allowed and result.decision.errors == ("no run 'ghost'",)


def test_admin_only_workspace_call(bundle, bindings_file):
    result = _check(bundle, bindings_file, "bob", (), "SetArtifactLocation", "workspace")
    assert result.reason.endswith("only administrators may SetArtifactLocation")


def test_cli_prints_policy_file_and_line_and_exits_by_decision(bindings_file, capsys):
    code = main(
        [
            "check",
            "--user",
            "rita",
            "--action",
            "GetExperiment",
            "--resource",
            "experiment:7",
            "--bindings",
            str(bindings_file),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("ALLOW GetExperiment on experiment 7")
    assert "experiment-reader (" in out and "10_experiment_reader.cedar:5)" in out
    code = main(
        [
            "check",
            "--user",
            "rita",
            "--action",
            "LogMetric",
            "--resource",
            "experiment:7",
            "--bindings",
            str(bindings_file),
        ]
    )
    assert code == 1
    assert "editors may LogMetric" in capsys.readouterr().out


def test_cli_reads_the_stage_of_a_version_from_the_bindings(bindings_file, capsys):
    args = [
        "check",
        "--user",
        "eddie",
        "--action",
        "DeleteModelVersion",
        "--resource",
        "model:churn",
        "--bindings",
        str(bindings_file),
    ]
    assert main([*args, "--version", "3"]) == 1
    assert main([*args, "--version", "1"]) == 0
    assert main([*args, "--stage", "Archived"]) == 0


def test_cli_usage_errors_exit_2(capsys):
    assert main(["check", "--user", "a", "--action", "GetRun", "--resource", "nope"]) == 2
    assert "expected experiment:ID" in capsys.readouterr().err


def test_an_unreachable_table_is_an_input_error(capsys):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"dynamodb://127.0.0.1:{port}/cedarflow"
    args = ["check", "--user", "a", "--action", "GetRun", "--resource", "experiment:1"]
    assert main([*args, "--table", uri]) == 4
    assert capsys.readouterr().err.startswith(f"{uri}:1:1: cannot read the table")


DATASET_BINDINGS = """\
experiments:
  "7":
    users: {rita: reader, eddie: editor}
    datasets: [d-1, d-2]
  "9":
    users: {eddie: reader}
    datasets: [d-2]
"""


@pytest.mark.parametrize(
    ("user", "action", "dataset", "code", "expected"),
    [
        ("rita", "GetDataset", "d-1", 0, "ALLOW GetDataset on dataset d-1"),
        ("eddie", "UpsertDatasetRecords", "d-1", 0, "experiment-editor ("),
        # a read needs one linked experiment, a change all of them
        ("eddie", "GetDataset", "d-2", 0, "experiment-reader ("),
        ("eddie", "UpsertDatasetRecords", "d-2", 1, "eddie is reader on experiment 9"),
        ("bob", "GetDataset", "d-1", 1, "bob has no role on experiment 7"),
        ("rita", "GetDataset", "d-404", 1, "cannot resolve dataset 'd-404'"),
    ],
)
def test_cli_decides_a_dataset_on_its_linked_experiments(
    tmp_path, capsys, user, action, dataset, code, expected
):
    bindings = tmp_path / "datasets.yaml"
    bindings.write_text(DATASET_BINDINGS)
    argv = ["check", "--user", user, "--action", action, "--resource", f"dataset:{dataset}"]
    assert main([*argv, "--bindings", str(bindings)]) == code
    assert expected in capsys.readouterr().out
