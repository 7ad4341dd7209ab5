"""Shared inputs for the simulator's tests: the shipped policies and a bindings file."""

from __future__ import annotations

from pathlib import Path

import pytest
from matrix_world import world  # noqa: F401 - the gateway and simulator side by side
from sim_support import POLICIES

from gateway.authz.policies import load_policies

BINDINGS_YAML = """\
experiments:
  "7":
    name: churn-training
    users: {bob: manager, rita: reader}
    groups: {vision: reader}
    runs: [run-1]
    traces: [tr-1]
  "8":
    users: {bob: manager}
    groups: {vision: editor}
    private: true
    runs: [run-8]
registered_models:
  churn:
    users: {alice: reader, eddie: editor}
    groups: {vision: reader}
    versions:
      "1": {stage: Staging}
      "3": {stage: Production, aliases: [champion]}
"""


@pytest.fixture(scope="session")
def bundle():
    return load_policies(POLICIES)


@pytest.fixture
def bindings_file(tmp_path: Path) -> Path:
    path = tmp_path / "bindings.yaml"
    path.write_text(BINDINGS_YAML)
    return path
