"""The processes the tests started: waiting for them to be gone, finding the ones left."""

from __future__ import annotations

import os
import time
from pathlib import Path

from gateway.stack.processes import is_alive


def wait_until_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    """Wait for processes to exit; returns those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if is_alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if is_alive(pid)]
    return alive


def processes_mentioning(text: str, *, environment: bool = False) -> list[int]:
    """Pids whose command line (and, with `environment`, environment) names `text`, this test
    process excluded."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            seen = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            if environment:
                seen += (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in seen:
            found.append(int(entry.name))
    return found


def group_members(pgid: int) -> list[int]:
    """Pids of the processes in a process group."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    found.append(int(entry.name))
            except ProcessLookupError:
                continue
    return found
