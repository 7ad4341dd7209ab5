"""`test`: the shipped cases pass; a wrong expectation fails with a non-zero exit."""

from __future__ import annotations

import json

import pytest
from sim_support import POLICIES, copy_policies, let_model_readers_tag

from gateway.simulate.casefile import load_case_file
from gateway.simulate.cli import main
from gateway.simulate.inputs import InputError

SHIPPED = sorted((POLICIES / "tests").glob("*.yaml"))


def test_cases_ship_with_the_default_roles():
    assert SHIPPED
    assert sum(len(load_case_file(p).cases) for p in SHIPPED) >= 30


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_cases_pass(path, capsys):
    assert main(["test", str(path)]) == 0, capsys.readouterr().out
    assert " 0 failed" in capsys.readouterr().out


def test_a_wrong_expectation_fails_with_exit_1(tmp_path, capsys):
    cases = tmp_path / "wrong.yaml"
    cases.write_text(
        f"policies: {POLICIES}\n"
        "bindings: {experiments: {'1': {users: {rita: reader}}}}\n"
        "cases:\n"
        "  - {name: readers log metrics, user: rita, action: LogMetric,\n"
        "     resource: 'experiment:1', expect: ALLOW}\n"
        "  - {name: readers read, user: rita, action: GetRun, resource: 'experiment:1',\n"
        "     expect: ALLOW, policies: [experiment-editor]}\n"
    )
    assert main(["test", str(cases)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  {cases}:4:5: readers log metrics: expected ALLOW, got DENY" in out
    assert "expected policies [experiment-editor], got [experiment-reader]" in out
    assert "0 passed, 2 failed" in out


def test_json_cases_and_an_edited_policy_folder(tmp_path, capsys):
    edited = copy_policies(tmp_path)
    let_model_readers_tag(edited)
    case = {
        "bindings": {"registered_models": {"churn": {"users": {"rita": "reader"}}}},
        "cases": [
            {
                "name": "readers tag models",
                "user": "rita",
                "action": "SetRegisteredModelTag",
                "resource": "model:churn",
                "expect": "ALLOW",
                "policies": ["model-reader"],
            },
        ],
    }
    path = tmp_path / "tag.json"
    path.write_text(json.dumps(case))
    assert main(["test", str(path), "--policies", str(edited)]) == 0
    assert main(["test", str(path), "--policies", str(POLICIES)]) == 1


def test_the_shipped_cases_catch_an_edit_they_cover(tmp_path, capsys):
    edited = copy_policies(tmp_path)
    let_model_readers_tag(edited)
    assert main(["test", *map(str, SHIPPED), "--policies", str(edited), "-q"]) == 1
    assert "a model reader cannot set tags: expected DENY, got ALLOW" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("cases: [\n", ":2:1:", "expected the node content"),
        (
            "cases:\n  - {name: a, user: u, action: GetRun, resource: 'experiment:1',"
            " expect: MAYBE}\n",
            ":2:5:",
            "expected ALLOW or DENY",
        ),
        (
            "bindings:\n  experiments:\n    '1': {users: {u: owner}}\ncases: []\n",
            ":3:10:",
            "unknown role 'owner'",
        ),
        (
            "cases:\n  - {name: a, user: u, resource: 'experiment:1', expect: DENY}\n",
            ":2:5:",
            "either `action` + `resource`, or `request`",
        ),
    ],
)
def test_case_file_errors_are_located(tmp_path, capsys, text, where, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        load_case_file(path)
    assert where in str(caught.value) and message in str(caught.value)
    assert main(["test", str(path), "--policies", str(POLICIES)]) == 4
    assert f"bad.yaml{where} " in capsys.readouterr().err
