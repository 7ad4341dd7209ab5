"""Waiting for processes the tests started to be gone."""

from __future__ import annotations

import time

from gateway.stack.processes import is_alive


def wait_until_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    """Wait for processes to exit; returns those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if is_alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if is_alive(pid)]
    return alive
