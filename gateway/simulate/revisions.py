"""A policy folder as it was at a git revision, exported into a temporary folder."""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePosixPath

from gateway.authz.policies import SCHEMA_FILE
from gateway.simulate.inputs import InputError, Location

_CHECKOUT = Path(__file__).resolve().parents[2]


def export_revision(revision: str, like: Path, into: Path) -> Path:
    """Write the policy folder at `revision` into `into`; `like` is the same folder today
    (its place in the repository says which folder to read)."""
    root, folder = _repository_folder(like)
    commit = _git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if commit is None:
        raise InputError(Location(revision), "neither a folder nor a git revision")
    listing = _git(root, "ls-tree", "--name-only", commit.strip(), f"{folder}/") or ""
    names = [PurePosixPath(n).name for n in listing.splitlines()]
    wanted = [n for n in names if n.endswith(".cedar") or n == SCHEMA_FILE]
    if not wanted:
        raise InputError(Location(f"{revision}:{folder}"), "no policy files at this revision")
    into.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        text = _git(root, "show", f"{commit.strip()}:{folder}/{name}")
        (into / name).write_text(text or "")
    return into


def _repository_folder(like: Path) -> tuple[Path, str]:
    probe = like if like.is_dir() else Path.cwd()
    top = _git(probe, "rev-parse", "--show-toplevel")
    if top is None:  # an edited copy outside the repository: the policies/ of this checkout
        for where in (Path.cwd(), _CHECKOUT):
            top = _git(where, "rev-parse", "--show-toplevel")
            if top is not None:
                return Path(top.strip()), "policies"
        raise InputError(Location(str(like)), "not inside a git repository")
    root = Path(top.strip())
    try:
        folder = like.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        folder = "policies"
    return root, folder or "."


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None
