"""Restarting a dead child with exponential backoff, and giving up on one that never stays up.

A child that stayed up for `stable_seconds` starts again from the first delay; one that dies
sooner counts as a failed start, and so does a restart that does not come up. After
`give_up_after` failed starts in a row the supervisor stops the whole process with one line.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.stack.processes import StackError


@dataclass(frozen=True)
class Backoff:
    first_seconds: float = 0.5
    cap_seconds: float = 30.0
    stable_seconds: float = 60.0  # up this long: the next death is a first failure again
    give_up_after: int = 8  # failed starts in a row (about 90 s of waiting in all)

    def delay(self, failures: int) -> float:
        """The wait before the restart that follows `failures` failed starts in a row (>= 1)."""
        return min(self.cap_seconds, self.first_seconds * 2 ** max(0, failures - 1))


class Restartable(Protocol):
    proc: subprocess.Popen | None

    def restart(self, stopping: threading.Event) -> None:
        """Start again on the same address; StackError when it does not come up."""


@dataclass(frozen=True)
class Death:
    """A child that exited, told in one line: its name, how it ended, when it comes back."""

    name: str
    how: str  # "was killed by SIGKILL", "exited with code 1", or why a restart failed
    delay_seconds: float
    failures: int

    @property
    def line(self) -> str:
        return f"the {self.name} {self.how}; restarting it in {self.delay_seconds:g} s"


def ended(code: int) -> str:
    """How a process with this return code ended, in words."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    """Watches named children from one thread; restarts each dead one after its backoff delay."""

    def __init__(
        self,
        backoff: Backoff,
        stopping: threading.Event,
        report: Callable[[Death], None],
        restarted: Callable[[str], None] = lambda name: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backoff = backoff
        self.stopping = stopping
        self.report = report
        self.restarted = restarted
        self.clock = clock
        self._up_since: dict[str, float] = {}
        self._failures: dict[str, int] = {}

    def check(self, name: str, child: Restartable) -> str | None:
        """Restart `child` if it died; returns why the process must stop, or None."""
        proc = getattr(child, "proc", None)
        self._up_since.setdefault(name, self.clock())
        if proc is None or proc.poll() is None:
            return None
        how = ended(proc.returncode)
        failures = self._failures.get(name, 0)
        if self.clock() - self._up_since[name] >= self.backoff.stable_seconds:
            failures = 0
        while not self.stopping.is_set():
            failures += 1
            self._failures[name] = failures
            if failures > self.backoff.give_up_after:
                return (
                    f"the {name} did not stay up after {self.backoff.give_up_after} "
                    f"restarts in a row; stopping"
                )
            delay = self.backoff.delay(failures)
            self.report(Death(name, how, delay, failures))
            if self.stopping.wait(delay):
                return None
            try:
                child.restart(self.stopping)
            except StackError as exc:
                how = f"did not start again ({exc})"
                continue
            self._up_since[name] = self.clock()
            self.restarted(name)
            return None
        return None
