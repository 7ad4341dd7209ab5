"""Helpers shared by the simulator's tests."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"


def copy_policies(tmp_path: Path) -> Path:
    """A copy of the shipped policy folder (without its tests) to edit."""
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target, ignore=shutil.ignore_patterns("tests"))
    return target


def let_model_readers_tag(policies: Path) -> None:
    reader = policies / "20_model_reader.cedar"
    anchor = 'Action::"GetModelVersionArtifact"'
    text = reader.read_text()
    assert anchor in text
    reader.write_text(text.replace(anchor, anchor + ',\n    Action::"SetRegisteredModelTag"'))
