"""Child processes that never outlive the stack: own process group, PDEATHSIG, bounded stop.

Linux sends PDEATHSIG when the *thread* that spawned the child exits, not the process: call
`spawn` (and the `start()` of the servers built on it) from a thread that lives as long as the
child, such as the main thread, never from a short-lived worker thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


class StackError(Exception):
    """A stack part could not start; the message is one line meant for the user."""


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    stdout: int | IO | None = None,
    stderr: int | IO | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen:
    """Start a child in its own process group that gets SIGTERM when this process dies.

    stdin is a pipe kept open by the parent: a child that watches it also sees the parent go.
    """
    parent_pid = os.getpid()

    def _in_child() -> None:
        if not sys.platform.startswith("linux"):
            return  # elsewhere only the stdin pipe tells a child that its parent is gone
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        # The parent may have died before prctl took effect: then nobody would signal us.
        if os.getppid() != parent_pid:
            os._exit(1)

    log_file = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=stdout if stdout is not None else log_file,
            stderr=stderr if stderr is not None else log_file,
            start_new_session=True,
            preexec_fn=_in_child,  # only prctl: nothing that takes a lock
        )
    finally:
        if log_path:
            log_file.close()


def stop(proc: subprocess.Popen, *, timeout: float = 15.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it has not exited in time."""
    if proc.stdin:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(5)
    # Anything the child left in its group goes too.
    _signal_group(proc.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def read_json_line(proc: subprocess.Popen, deadline: float) -> dict:
    """Read the first stdout line of a child (its announcement) before the deadline."""
    result: dict = {}

    def _read() -> None:
        # ValueError/OSError: not JSON, or the pipe was closed under us after the deadline.
        with contextlib.suppress(ValueError, OSError):
            line = proc.stdout.readline() if proc.stdout else b""
            result.update(json.loads(line))

    reader = threading.Thread(target=_read, daemon=True)
    reader.start()
    reader.join(max(0.0, deadline - time.monotonic()))
    return result


def last_line(path: Path) -> str:
    """The last non-empty line of a log file, for a one-line error."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    return lines[-1][:200] if lines else ""


def is_alive(pid: int) -> bool:
    """True while a process with this pid exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
