"""A policy file broken while the gateway serves calls: the last good set stays in force for
every call, and the fixed file applies again."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import httpx
from gw_support import POLICIES

MANAGER_FILE = "12_experiment_manager.cedar"
BROKEN = ("resource is Experiment", "resource is Experimnt")  # an entity type nobody declares


def _rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    stamp = time.time_ns() + 1_000_000_000  # a new mtime even on coarse filesystems
    os.utime(path, ns=(stamp, stamp))


def _wait_for(condition, what: str) -> None:
    for _ in range(300):
        if condition():
            return
        threading.Event().wait(0.05)
    raise AssertionError(f"the gateway never saw {what}")


def test_a_broken_policy_file_leaves_the_last_good_set_in_force(
    start_gateway, echo_upstream, alices, tmp_path
):
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    gateway = start_gateway(echo_upstream[1], policies_dir=policies)
    store = gateway.app.state.policies
    tokens = {"alice": gateway.idp.mint("alice"), "bob": gateway.idp.mint("bob")}
    expected = {"alice": 200, "bob": 403}  # alice manages the experiment, bob has no grant
    seen: list[tuple[str, int]] = []
    stop = threading.Event()

    def delete_experiment(user: str) -> int:
        with httpx.Client(base_url=gateway.url, trust_env=False, timeout=30) as client:
            response = client.post(
                "/api/2.0/mlflow/experiments/delete",
                json={"experiment_id": alices.experiment_id},
                headers={"Authorization": f"Bearer {tokens[user]}"},
            )
        return response.status_code

    def keep_calling() -> None:
        while not stop.is_set():
            for user in expected:
                seen.append((user, delete_experiment(user)))

    good = store.current.revision
    caller = threading.Thread(target=keep_calling)
    caller.start()
    try:
        _rewrite(policies / MANAGER_FILE, *BROKEN)
        _wait_for(lambda: store.last_error is not None, "the broken file")
        assert MANAGER_FILE in str(store.last_error)
        assert store.current.revision == good
        calls_while_broken = len(seen)
        _wait_for(lambda: len(seen) >= calls_while_broken + 4, "calls while broken")
        _rewrite(policies / MANAGER_FILE, BROKEN[1], BROKEN[0])
        _wait_for(lambda: store.last_error is None, "the fixed file")
    finally:
        stop.set()
        caller.join(60)
    assert len(seen) > calls_while_broken
    assert seen and all(status == expected[user] for user, status in seen), seen
    for user, status in expected.items():
        assert delete_experiment(user) == status
