"""`diff`: the reader-may-tag edit changes exactly one cell per affected role."""

from __future__ import annotations

import subprocess

from sim_support import POLICIES, REPO, copy_policies, let_model_readers_tag

from gateway.authz.policies import load_policies
from gateway.simulate.cli import main
from gateway.simulate.diff import diff_matrices
from gateway.simulate.matrix import build_matrix


def test_reader_may_tag_shows_one_changed_cell_per_affected_role(tmp_path, bundle):
    edited = copy_policies(tmp_path)
    let_model_readers_tag(edited)
    changes = diff_matrices(build_matrix(bundle), build_matrix(load_policies(edited)))
    cells = sorted((c.rtype, c.action, c.column) for c in changes)
    # model readers, directly and through a group: editors, managers, admins had it already
    assert cells == [
        ("registered_model", "SetRegisteredModelTag", "group:reader"),
        ("registered_model", "SetRegisteredModelTag", "reader"),
    ]
    assert all(not c.before.allowed and c.after.allowed for c in changes)
    assert all(c.after.policy_ids == ("model-reader",) for c in changes)


def test_cli_names_the_cause_and_exits_1_on_changes(tmp_path, capsys):
    edited = copy_policies(tmp_path)
    let_model_readers_tag(edited)
    assert main(["diff", "--base", str(POLICIES), "--head", str(edited)]) == 1
    out = capsys.readouterr().out
    assert "registered model SetRegisteredModelTag, reader (direct): DENY -> ALLOW" in out
    assert "now permitted by model-reader (" in out and "20_model_reader.cedar:" in out
    assert "2 changed cell(s) in 1 action(s)" in out
    assert main(["diff", "--base", str(POLICIES), "--head", str(POLICIES)]) == 0
    assert "no decision changes" in capsys.readouterr().out


def test_a_narrowing_edit_names_the_permit_that_no_longer_applies(tmp_path, capsys):
    edited = copy_policies(tmp_path)
    manager = edited / "12_experiment_manager.cedar"
    manager.write_text(manager.read_text().replace('    Action::"DeleteRun",\n', ""))
    assert main(["diff", "--base", str(POLICIES), "--head", str(edited)]) == 1
    out = capsys.readouterr().out
    assert "experiment DeleteRun, manager (direct): ALLOW -> DENY" in out
    assert "no longer permitted by experiment-manager" in out
    # manager, group manager and private manager lose it; admins keep it
    assert "3 changed cell(s) in 1 action(s)" in out


def test_base_from_a_git_revision(tmp_path, capsys):
    committed = subprocess.run(
        ["git", "ls-tree", "--name-only", "HEAD", "policies/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "policies/schema.cedarschema" in committed
    head = tmp_path / "policies"
    head.mkdir()
    for name in committed.split():
        if name.endswith((".cedar", ".cedarschema")):
            text = subprocess.run(
                ["git", "show", f"HEAD:{name}"],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            (head / name.split("/")[-1]).write_text(text)
    let_model_readers_tag(head)
    assert main(["diff", "--base", "HEAD", "--head", str(head)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("base: HEAD (git)") and "2 changed cell(s)" in out


def test_unknown_revision_and_broken_head_are_located_errors(tmp_path, capsys):
    assert main(["diff", "--base", "no-such-revision-xyz", "--head", str(POLICIES)]) == 4
    assert (
        "no-such-revision-xyz:1:1: neither a folder nor a git revision" in capsys.readouterr().err
    )
    broken = copy_policies(tmp_path)
    reader = broken / "10_experiment_reader.cedar"
    reader.write_text(reader.read_text().replace('Action::"GetRun",', 'Action::"GetRunn",'))
    assert main(["diff", "--base", str(POLICIES), "--head", str(broken)]) == 3
    err = capsys.readouterr().err
    assert "10_experiment_reader.cedar:11:5: " in err and "GetRunn" in err
