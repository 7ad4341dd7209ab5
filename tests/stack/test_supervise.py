"""The restart schedule: doubling delays up to a cap, a reset after a stable run, giving up."""

from __future__ import annotations

import subprocess
import sys
import threading

from gateway.stack.processes import StackError
from gateway.stack.supervise import Backoff, Death, Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Child:
    """A real process that exits with `code`; each restart runs one more or fails to start."""

    def __init__(self, code: int, starts: list[bool]) -> None:
        self.code = code
        self.starts = starts  # True: the restart comes up (and exits at once again)
        self.restarts = 0
        self.proc: subprocess.Popen | None = self._exiting()

    def _exiting(self) -> subprocess.Popen:
        code = f"import os; os.kill(os.getpid(), {-self.code})" if self.code < 0 else ""
        code = code or f"raise SystemExit({self.code})"
        proc = subprocess.Popen([sys.executable, "-c", code])
        proc.wait(30)
        return proc

    def restart(self, stopping: threading.Event) -> None:
        self.restarts += 1
        if not self.starts.pop(0):
            self.proc = None
            raise StackError("handler tier did not start: address already in use")
        self.proc = self._exiting()


class NoWait(threading.Event):
    """A stopping event whose waits return at once, counting the time asked for."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.waited: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waited.append(timeout or 0.0)
        self.clock.now += timeout or 0.0
        return self.is_set()


def _supervisor(backoff: Backoff) -> tuple[Supervisor, NoWait, list[Death], Clock]:
    clock = Clock()
    stopping = NoWait(clock)
    deaths: list[Death] = []
    return Supervisor(backoff, stopping, deaths.append, clock=clock), stopping, deaths, clock


def test_delays_double_up_to_the_cap_and_the_supervisor_gives_up() -> None:
    supervisor, stopping, deaths, _ = _supervisor(Backoff(give_up_after=8))
    child = Child(3, starts=[False] * 20)
    failure = supervisor.check("handler tier", child)
    assert failure == "the handler tier did not stay up after 8 restarts in a row; stopping"
    assert stopping.waited == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert child.restarts == 8
    assert deaths[0].line == "the handler tier exited with code 3; restarting it in 0.5 s"
    assert deaths[1].how.startswith("did not start again (handler tier did not start: address")


def test_a_child_that_dies_right_after_each_start_backs_off_too() -> None:
    supervisor, stopping, _, _ = _supervisor(Backoff(give_up_after=4))
    child = Child(-9, starts=[True] * 10)
    failures = [supervisor.check("local DynamoDB", child) for _ in range(5)]
    assert failures[:4] == [None] * 4
    assert failures[4] == "the local DynamoDB did not stay up after 4 restarts in a row; stopping"
    assert stopping.waited == [0.5, 1, 2, 4]


def test_a_child_that_stayed_up_starts_again_from_the_first_delay() -> None:
    supervisor, stopping, deaths, clock = _supervisor(Backoff(stable_seconds=60))
    child = Child(-9, starts=[True] * 3)
    assert supervisor.check("handler tier", child) is None
    assert supervisor.check("handler tier", child) is None
    clock.now += 61
    assert supervisor.check("handler tier", child) is None
    assert stopping.waited == [0.5, 1, 0.5]
    assert deaths[0].how == "was killed by SIGKILL"


def test_no_restart_once_the_process_is_stopping() -> None:
    supervisor, stopping, deaths, _ = _supervisor(Backoff())
    stopping.set()
    child = Child(1, starts=[True])
    assert supervisor.check("handler tier", child) is None
    assert child.restarts == 0 and deaths == []
