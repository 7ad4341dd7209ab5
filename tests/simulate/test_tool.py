"""`tools/simulate` runs from the checkout under any Python, like `cedarflow simulate`."""

from __future__ import annotations

import os
import subprocess
import sys

from sim_support import REPO

TOOL = REPO / "tools" / "simulate"


CHECK = ["check", "--user", "x", "--action", "CreateExperiment", "--resource", "workspace"]


def _run(*args: str, python: str | None = None) -> subprocess.CompletedProcess:
    command = [python, str(TOOL), *args] if python else [str(TOOL), *args]
    env = {k: v for k, v in os.environ.items() if k != "CEDARFLOW_SIMULATE_REEXEC"}
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=300, env=env, check=False
    )


def test_the_tool_is_executable_and_documents_exit_codes():
    assert os.access(TOOL, os.X_OK)
    done = _run("--help")
    assert done.returncode == 0
    for line in ("0  ALLOW", "1  DENY", "2  the command line", "3  a policy set", "4  a bindings"):
        assert line in done.stdout
    for command in ("check", "request", "matrix", "test", "diff", "replay"):
        assert command in done.stdout


def test_the_tool_runs_the_shipped_policy_tests():
    done = _run("test", "-q", "policies/tests/default_roles.yaml", python=sys.executable)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 failed" in done.stdout


def test_the_tool_finds_the_venv_from_a_python_without_the_project():
    bare = [sys.executable, "-S"]  # no site-packages: cedarpy cannot be imported
    probe = subprocess.run([*bare, "-c", "import cedarpy"], capture_output=True, check=False)
    assert probe.returncode != 0
    done = subprocess.run(
        [*bare, str(TOOL), *CHECK],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ALLOW CreateExperiment")


def test_cedarflow_simulate_is_the_same_command():
    import argparse

    from gateway.simulate.cli import add_simulate_command

    parser = argparse.ArgumentParser(prog="cedarflow")
    add_simulate_command(parser.add_subparsers())
    args = parser.parse_args(["simulate", *CHECK])
    assert args.run(args) == 0
    args = parser.parse_args(["simulate"])
    assert args.run(args) == 2
